// The sandbox card field: the browser half of the sandbox payment gateway, as a
// real gateway's hosted field would be. It turns a test card number into the
// gateway's token here, in the browser; the card inputs have no name, so the
// form never submits them, and only the token reaches the server.
"use strict";

const SANDBOX_TEST_CARDS = {
  "4242424242424242": "tok_visa",
  "5555555555554444": "tok_mastercard",
  "4000000000000002": "tok_chargeDeclined",
  "4000000000009995": "tok_insufficientFunds",
  "4000000000000119": "tok_processingError",
  "4000000000000341": "tok_visa_renewalDeclined"
};

function luhnValid(digits) {
  let total = 0;
  for (let i = 0; i < digits.length; i++) {
    let value = Number(digits[digits.length - 1 - i]);
    if (i % 2 === 1) {
      value *= 2;
      if (value > 9) value -= 9;
    }
    total += value;
  }
  return digits.length >= 12 && total % 10 === 0;
}

function sandboxToken(cardNumber) {
  const digits = cardNumber.replace(/[\s-]/g, "");
  if (!/^\d+$/.test(digits) || !luhnValid(digits)) return { error: "invalid" };
  const token = SANDBOX_TEST_CARDS[digits];
  return token ? { token: token } : { error: "unknown" };
}

function attachSandboxCard(form) {
  const field = form.querySelector("[data-sandbox-card]");
  const number = field.querySelector("[data-card-number]");
  const error = field.querySelector("[data-card-error]");
  let tokenInput = form.querySelector("input[name=payment_token]");
  if (!tokenInput) {
    tokenInput = document.createElement("input");
    tokenInput.type = "hidden";
    tokenInput.name = "payment_token";
    form.appendChild(tokenInput);
  }
  form.addEventListener("submit", function (event) {
    const made = sandboxToken(number.value);
    if (made.error) {
      event.preventDefault();
      error.textContent = error.getAttribute("data-message-" + made.error);
      number.setAttribute("aria-invalid", "true");
      number.focus();
      return;
    }
    tokenInput.value = made.token;
    number.removeAttribute("aria-invalid");
    error.textContent = "";
    // Nothing of the card stays in the page once it has been tokenized.
    field.querySelectorAll("input").forEach(function (input) { input.value = ""; });
  });
}

// Every form with a card field: the upgrade's payment and the card on file's update.
document.addEventListener("DOMContentLoaded", function () {
  document.querySelectorAll("form").forEach(function (form) {
    if (form.querySelector("[data-sandbox-card]")) attachSandboxCard(form);
  });
});
