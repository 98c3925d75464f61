// Live updates for the conversation view: new messages (any of the customer's channels) appear without a
// reload. Customer text is untrusted: it is only ever set with textContent.
(function () {
  "use strict";
  const root = document.querySelector(".conversation");
  if (!root) return;
  const id = root.dataset.conversationId;
  const log = document.getElementById("log");
  const stateLabel = document.getElementById("state");
  const seenInput = document.querySelector('.reply input[name="seen_message_id"]');
  let lastId = Number(root.dataset.lastMessageId || 0);

  // The newest messages are at the bottom of the (scrollable) log: start there.
  log.scrollTop = log.scrollHeight;

  function element(tag, className, text) {
    const node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined) node.textContent = text;
    return node;
  }

  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];

  // The same "23 Nov 18:12" (UTC) the server renders, so a live message reads like its neighbours.
  function shortTime(iso) {
    const date = new Date(/(Z|[+-]\d\d:\d\d)$/i.test(iso) ? iso : iso + "Z");
    const pad = (n) => String(n).padStart(2, "0");
    return `${pad(date.getUTCDate())} ${MONTHS[date.getUTCMonth()]} ${pad(date.getUTCHours())}:${pad(date.getUTCMinutes())}`;
  }

  function render(message) {
    const item = element("li", `msg msg--${message.direction} msg--${message.author_kind} msg--new` + (String(message.conversation_id) !== id ? " msg--other" : ""));
    item.dataset.id = message.id;
    const meta = element("div", "msg__meta");
    meta.append(element("span", `chip chip--${message.channel}`, message.channel), element("span", "", message.author || ""));
    const time = element("time", "", shortTime(message.created_at));
    time.dateTime = message.created_at;
    meta.append(time);
    const text = element("div", message.abusive ? "msg__text abuse" : "msg__text", message.text);
    if (message.abusive) text.tabIndex = 0; // blurred until clicked (static/moderation.js)
    item.append(meta, text);
    if (message.direction === "in" && message.intent) {
      item.append(element("div", "msg__understanding", `${message.intent} · ${message.sentiment} · ${message.action || ""}`));
    }
    return item;
  }

  async function poll() {
    try {
      const response = await fetch(`/console/conversations/${id}/updates?after=${lastId}`, { credentials: "same-origin" });
      if (response.status === 401 || response.redirected) return;
      if (!response.ok) return;
      const body = await response.json();
      if (stateLabel) stateLabel.textContent = body.state;
      let shown = null;
      for (const message of body.messages) {
        if (message.id <= lastId || log.querySelector(`[data-id="${message.id}"]`)) continue;
        shown = render(message);
        log.append(shown);
        lastId = message.id;
      }
      if (shown) {
        log.scrollTop = log.scrollHeight;
        // The agent now has these messages on screen: the reply form must not warn that the customer
        // "wrote again meanwhile" about a message it just showed (the collision guard compares ids).
        if (seenInput && Number(seenInput.value) < lastId) seenInput.value = String(lastId);
      }
    } catch (error) {
      // The server may be restarting; try again on the next tick.
    }
  }

  setInterval(poll, 3000);
})();
