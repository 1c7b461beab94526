// Typing a date switches the period to "Custom range", so the typed dates are the ones used.
(function () {
  "use strict";
  const form = document.getElementById("filter-bar");
  if (!form) return;
  const preset = form.querySelector("[name=preset]");
  form.querySelectorAll("input[type=date]").forEach(function (input) {
    input.addEventListener("change", function () { if (preset) preset.value = "custom"; });
  });
})();
