// Progressive enhancement for the confirmation page: a "copy link" button (the link is readable
// and selectable without JavaScript).
(function () {
  var button = document.getElementById("copy-link");
  if (!button || !navigator.clipboard) { return; }
  button.hidden = false;
  button.addEventListener("click", function () {
    navigator.clipboard.writeText(button.getAttribute("data-copy")).then(function () {
      button.textContent = "\u2713 " + button.textContent.replace(/^\u2713 /, "");
    });
  });
})();
