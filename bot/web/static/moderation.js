// Text flagged abusive (the moderation queue, a conversation's messages) is blurred until a member of staff
// clicks it or presses Enter or Space on it. Delegated, so messages added later by static/console.js work too.
(() => {
  "use strict";
  const reveal = (event) => event.target.closest(".abuse")?.classList.add("revealed");
  document.addEventListener("click", reveal);
  document.addEventListener("keydown", (event) => {
    if (event.key === "Enter" || event.key === " ") reveal(event);
  });
})();
