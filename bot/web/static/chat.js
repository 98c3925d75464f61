// The web chat widget. Customer and reply text is untrusted: it is only ever set with textContent and
// links are built as DOM nodes, never through innerHTML.
// The session: a random id kept in localStorage; the server opens it with the first message and sets an
// HttpOnly cookie holding its token, which the browser sends with every later request. A session the
// server no longer opens for us (401/403: the cookie expired or was cleared) is replaced by a new one.
(() => {
  "use strict";
  const log = document.getElementById("log");
  const form = document.getElementById("form");
  const input = document.getElementById("text");
  const send = document.getElementById("send");
  const status = document.getElementById("status");
  const KEY = "socialbot-session";
  const OPENED = "socialbot-session-opened";
  let sessionId = localStorage.getItem(KEY);
  if (!sessionId) startSession();
  const shown = new Set();
  let lastId = 0;

  function startSession() {
    sessionId = "web-" + crypto.randomUUID();
    localStorage.setItem(KEY, sessionId);
    localStorage.removeItem(OPENED);
  }

  function refused(response) {
    return response.status === 401 || response.status === 403;
  }

  // Inline text: bare URLs become links. Only DOM nodes are created; nothing is parsed as HTML.
  function appendLinkified(node, text) {
    const urlPattern = /https?:\/\/[^\s<>"')]+/g;
    let last = 0;
    for (const match of text.matchAll(urlPattern)) {
      node.append(document.createTextNode(text.slice(last, match.index)));
      node.append(makeLink(match[0], match[0]));
      last = match.index + match[0].length;
    }
    node.append(document.createTextNode(text.slice(last)));
  }

  function makeLink(href, label) {
    const link = document.createElement("a");
    link.textContent = label;
    if (/^https?:\/\//.test(href)) {
      link.href = href;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
    }
    return link;
  }

  // The little Markdown the knowledge base uses in replies: **bold**, [text](url) and "- " list lines.
  function appendInlineMarkdown(node, text) {
    const pattern = /\*\*([^*]+)\*\*|\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g;
    let last = 0;
    for (const match of text.matchAll(pattern)) {
      appendLinkified(node, text.slice(last, match.index));
      if (match[1] !== undefined) {
        const strong = document.createElement("strong");
        strong.textContent = match[1];
        node.append(strong);
      } else {
        node.append(makeLink(match[3], match[2]));
      }
      last = match.index + match[0].length;
    }
    appendLinkified(node, text.slice(last));
  }

  function appendMarkdown(node, text) {
    let list = null;
    text.split("\n").forEach((line, index, lines) => {
      const item = /^\s*[-*] (.*)$/.exec(line);
      if (item) {
        if (!list) {
          list = document.createElement("ul");
          node.append(list);
        }
        const li = document.createElement("li");
        appendInlineMarkdown(li, item[1]);
        list.append(li);
        return;
      }
      list = null;
      appendInlineMarkdown(node, line);
      if (index < lines.length - 1) node.append(document.createTextNode("\n"));
    });
  }

  function show(kind, text, id) {
    if (id !== undefined) {
      if (shown.has(id)) return;
      shown.add(id);
      lastId = Math.max(lastId, id);
    }
    const item = document.createElement("li");
    item.className = "bubble bubble--" + kind;
    if (kind === "staff") {
      const who = document.createElement("span");
      who.className = "bubble__who";
      who.textContent = "Support team";
      item.append(who);
    }
    if (kind === "customer") appendLinkified(item, text);
    else appendMarkdown(item, text);
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }

  async function poll() {
    if (localStorage.getItem(OPENED) !== sessionId) return; // nothing to read before the first message
    try {
      const response = await fetch(`/api/v1/chat/${encodeURIComponent(sessionId)}/messages?after=${lastId}`);
      if (refused(response)) {
        startSession();
        return;
      }
      if (!response.ok) return;
      for (const message of await response.json()) {
        show(message.direction === "in" ? "customer" : message.author, message.text, message.id);
      }
    } catch (error) {
      /* offline for a moment: the next poll catches up */
    }
  }

  form.addEventListener("submit", async (event) => {
    event.preventDefault();
    const text = input.value;
    if (!text.trim()) return;
    const messageId = crypto.randomUUID();
    send.disabled = true;
    status.textContent = "Sending...";
    for (let attempt = 0; attempt < 5; attempt++) {
      try {
        const response = await fetch("/api/v1/chat", {
          method: "POST",
          headers: { "Content-Type": "application/json" },
          body: JSON.stringify({ session_id: sessionId, text: text, message_id: messageId }),
        });
        const body = await response.json();
        if (refused(response) && attempt === 0) {
          startSession(); // the old session can't be written any more: this message opens a new one
          continue;
        }
        if (response.status === 503) {
          status.textContent = "We're busy - retrying...";
          await new Promise((resolve) => setTimeout(resolve, 1500 * (attempt + 1)));
          continue;
        }
        if (!response.ok) {
          status.textContent = body.error || "Sorry, that message could not be sent.";
          break;
        }
        localStorage.setItem(OPENED, sessionId);
        input.value = "";
        show("customer", text, body.message_id);
        for (const reply of body.replies) show("bot", reply.text, reply.id);
        status.textContent = body.state === "human" ? "A person from our team will reply here." : "";
        break;
      } catch (error) {
        status.textContent = "Connection lost - retrying...";
        await new Promise((resolve) => setTimeout(resolve, 1500 * (attempt + 1)));
      }
    }
    send.disabled = false;
    input.focus();
  });

  input.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey) {
      event.preventDefault();
      form.requestSubmit();
    }
  });

  poll();
  setInterval(poll, 3000);
})();
