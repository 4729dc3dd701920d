// The console works without this file; with it, the order summary and the
// change's quote follow the choices as they change. No rule lives here: the
// server prices every change and renders what is shown.
"use strict";

document.documentElement.classList.add("js");

function debounce(fn, ms) {
  let timer = null;
  return function () {
    clearTimeout(timer);
    timer = setTimeout(fn, ms);
  };
}

// Ask the server for the summary of the form's choices and swap it in. The
// upgrade's summary is a GET (the form is a GET form); the change's is a POST
// carrying the form's CSRF token, like its "Show the quote" button.
function liveSummary(form, onFresh) {
  const url = form.getAttribute("data-summary-url");
  const id = form.getAttribute("data-summary-id") || "order-summary";
  const post = form.method.toLowerCase() === "post";
  let latest = 0;
  const refresh = debounce(function () {
    const asked = ++latest;
    const fields = new URLSearchParams(new FormData(form));
    const sent = post
      ? fetch(url, { method: "POST", body: fields, credentials: "same-origin", headers: { Accept: "text/html" } })
      : fetch(url + "?" + fields.toString(), { credentials: "same-origin", headers: { Accept: "text/html" } });
    sent
      .then(function (answer) { return answer.ok ? answer.text() : Promise.reject(answer.status); })
      .then(function (html) {
        if (asked !== latest) return; // an older answer arriving late
        const current = document.getElementById(id);
        const holder = document.createElement("div");
        holder.innerHTML = html;
        const fresh = holder.querySelector("#" + id);
        if (current && fresh) current.replaceWith(fresh);
        if (onFresh) onFresh(fresh);
      })
      .catch(function () { /* keep the last summary; the form's own button still works */ });
  }, 250);
  form.addEventListener("input", refresh);
  form.addEventListener("change", refresh);
}

document.addEventListener("DOMContentLoaded", function () {
  const upgrade = document.getElementById("upgrade-form");
  if (upgrade) {
    const continueButton = upgrade.querySelector("#continue");
    liveSummary(upgrade, function (fresh) {
      if (continueButton) continueButton.disabled = !(fresh && fresh.querySelector("[data-total]"));
    });
  }
  const change = document.getElementById("change-form");
  if (change) liveSummary(change, null);
});
