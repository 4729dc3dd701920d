// The console works without this file; with it, the order summary follows the
// choices as they change. No rule lives here: the server prices every change.
"use strict";

document.documentElement.classList.add("js");

function debounce(fn, ms) {
  let timer = null;
  return function () {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

function liveOrderSummary(form) {
  const url = form.getAttribute("data-summary-url");
  const continueButton = form.querySelector("#continue");
  let latest = 0;
  const refresh = debounce(function () {
    const asked = ++latest;
    const query = new URLSearchParams(new FormData(form)).toString();
    fetch(url + "?" + query, { credentials: "same-origin", headers: { Accept: "text/html" } })
      .then(function (answer) { return answer.ok ? answer.text() : Promise.reject(answer.status); })
      .then(function (html) {
        if (asked !== latest) return; // an older answer arriving late
        const current = document.getElementById("order-summary");
        const holder = document.createElement("div");
        holder.innerHTML = html;
        const fresh = holder.querySelector("#order-summary");
        if (current && fresh) current.replaceWith(fresh);
        if (continueButton) continueButton.disabled = !(fresh && fresh.querySelector("[data-total]"));
      })
      .catch(function () { /* keep the last summary; "Update the summary" still works */ });
  }, 250);
  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
}

document.addEventListener("DOMContentLoaded", function () {
  const upgrade = document.getElementById("upgrade-form");
  if (upgrade) liveOrderSummary(upgrade);
});
