// The embeddable chat: a brand's site includes
//   <script src="https://<socialbot>/widget.js" data-color="#2f6b4f" data-greeting="Hi! How can we help?" async></script>
// and gets a round button that opens the chat in a frame served by socialbot itself (its cookies, its CSP; the
// site must be listed in [webchat] allowed_origins to frame it). Nothing here reads or writes the site's page
// beyond the two elements it adds; styles are set through the CSSOM, so the site's CSP needs no 'unsafe-inline'.
(() => {
  "use strict";
  const script = document.currentScript;
  if (!script || window.__socialbotWidget) return;
  window.__socialbotWidget = true;
  const origin = new URL(script.src).origin;
  const color = /^#(?:[0-9a-f]{3}){1,2}$/i.test(script.dataset.color || "") ? script.dataset.color : "";
  if (script.dataset.color && !color) console.warn("socialbot widget: data-color must be a hex colour like #2f6b4f");
  const greeting = (script.dataset.greeting || "").trim().slice(0, 200);

  const query = new URLSearchParams();
  if (color) query.set("color", color);
  if (greeting) query.set("greeting", greeting);
  const src = `${origin}/chat/embed${query.toString() ? "?" + query : ""}`;

  const button = document.createElement("button");
  button.type = "button";
  button.id = "socialbot-launcher";
  button.setAttribute("aria-label", "Chat with us");
  button.setAttribute("aria-expanded", "false");
  button.append(chatIcon());
  Object.assign(button.style, {
    position: "fixed", right: "20px", bottom: "20px", width: "60px", height: "60px", borderRadius: "50%",
    border: "0", background: color || "#2f6b4f", color: "#fff", cursor: "pointer", display: "grid",
    placeItems: "center", padding: "0",
    boxShadow: "0 8px 24px rgba(0,0,0,.25)", zIndex: "2147483646",
  });

  // A speech bubble, drawn (no emoji font or image needed on the site).
  function chatIcon() {
    const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
    svg.setAttribute("viewBox", "0 0 24 24");
    svg.setAttribute("width", "28");
    svg.setAttribute("height", "28");
    svg.setAttribute("aria-hidden", "true");
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", "M4 4h16a2 2 0 0 1 2 2v10a2 2 0 0 1-2 2H9l-5 4v-4H4a2 2 0 0 1-2-2V6a2 2 0 0 1 2-2z");
    path.setAttribute("fill", "currentColor");
    svg.append(path);
    return svg;
  }

  let frame = null;
  const narrow = window.matchMedia("(max-width: 520px)");

  function place() {
    if (!frame) return;
    const phone = narrow.matches;
    Object.assign(frame.style, phone
      ? { right: "0", bottom: "0", width: "100%", height: "100%", borderRadius: "0" }
      : { right: "20px", bottom: "92px", width: "380px", height: "min(620px, calc(100vh - 112px))", borderRadius: "16px" });
  }

  function open() {
    if (!frame) {
      frame = document.createElement("iframe");
      frame.id = "socialbot-chat";
      frame.title = "Chat with us";
      frame.src = src;
      Object.assign(frame.style, {
        position: "fixed", border: "0", background: "#fff", boxShadow: "0 18px 50px rgba(0,0,0,.25)",
        zIndex: "2147483647",
      });
      document.body.append(frame);
      place();
    }
    frame.hidden = false;
    button.setAttribute("aria-expanded", "true");
  }

  function close() {
    if (frame) frame.hidden = true;
    button.setAttribute("aria-expanded", "false");
    button.focus();
  }

  button.addEventListener("click", () => (frame && !frame.hidden ? close() : open()));
  narrow.addEventListener("change", place);
  // The frame's close button: only a message from our own frame counts.
  window.addEventListener("message", (event) => {
    if (frame && event.source === frame.contentWindow && event.origin === origin && event.data?.socialbot === "close") {
      close();
    }
  });

  if (document.body) document.body.append(button);
  else document.addEventListener("DOMContentLoaded", () => document.body.append(button));
})();
