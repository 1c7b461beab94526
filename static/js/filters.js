// Typing a date switches the period to "Custom range", so the typed dates are the ones used.
// Listened for on the document (capturing, so before htmx reads the fields): HTMX answers swap
// the date inputs, and Back the whole page, for new elements.
(function () {
  "use strict";
  document.addEventListener("change", function (event) {
    const form = event.target.closest("#filter-bar");
    const preset = form && form.querySelector("[name=preset]");
    if (preset && event.target.matches("input[type=date]")) preset.value = "custom";
  }, true);
})();
