// The elicitation page (templates/annotation/elicit.html): htmx leaves a refused rating's row as it
// was (it swaps no 4xx answer), so the server's reason is shown here, as text, never as markup.
document.addEventListener("htmx:responseError", (event) => {
  const box = document.getElementById("elicit-error");
  if (!box) return;
  box.textContent = event.detail.xhr.responseText || "The rating could not be stored.";
  box.hidden = false;
});
document.addEventListener("htmx:afterSwap", () => {
  const box = document.getElementById("elicit-error");
  if (box) box.hidden = true;
});
