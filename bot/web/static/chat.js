// The web chat page. Customer and reply text is untrusted: it is only ever set with textContent and links are
// built as DOM nodes, never through innerHTML. No inline script or style anywhere (strict CSP).
// The session: a random id kept in localStorage; the server opens it with the first message and sets an
// HttpOnly cookie holding its token. In the embedded widget's frame (another site's page around it) that
// cookie may not be sent, so there the token from the first answer is kept and sent as a bearer credential.
// A session the server no longer opens for us (401/403) is replaced by a new one.
// Live updates (who has the conversation, staff replies, the agent typing) come from one server-sent event
// stream, read with fetch so the bearer token can go with it; it ends every ~25 s and is opened again.
(() => {
  "use strict";
  const chat = document.getElementById("chat");
  const log = document.getElementById("log");
  const form = document.getElementById("form");
  const input = document.getElementById("text");
  const send = document.getElementById("send");
  const status = document.getElementById("status");
  const presence = document.getElementById("presence");
  const presenceLabel = document.getElementById("presence-label");
  const typing = document.getElementById("typing");
  const typingLabel = document.getElementById("typing-label");
  const embedded = chat.dataset.embedded === "true";
  const KEY = "socialbot-session";
  const OPENED = "socialbot-session-opened";
  const TOKEN = "socialbot-session-token";
  const TYPING_EVERY_MS = 2500;
  const timeFormat = new Intl.DateTimeFormat(undefined, { hour: "2-digit", minute: "2-digit" });
  let sessionId = localStorage.getItem(KEY);
  if (!sessionId) startSession();
  const shown = new Set();
  let lastId = 0;
  let agentName = null;

  function startSession() {
    sessionId = "web-" + crypto.randomUUID();
    localStorage.setItem(KEY, sessionId);
    localStorage.removeItem(OPENED);
    localStorage.removeItem(TOKEN);
  }

  function opened() {
    return localStorage.getItem(OPENED) === sessionId;
  }

  function sessionUrl(what) {
    return `/api/v1/chat/${encodeURIComponent(sessionId)}/${what}`;
  }

  // The bearer token where the cookie can't be relied on (the widget's frame); else the cookie goes alone.
  function headers(extra) {
    const token = embedded ? localStorage.getItem(TOKEN) : null;
    return token ? { ...extra, Authorization: "Bearer " + token } : { ...extra };
  }

  function refused(response) {
    return response.status === 401 || response.status === 403;
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  // The brand colour, and a text colour that stays readable on it.
  function applyColor(color) {
    if (!/^#(?:[0-9a-f]{3}){1,2}$/i.test(color)) return;
    const hex = color.length === 4 ? color.replace(/[0-9a-f]/gi, (c) => c + c) : color;
    const [r, g, b] = [1, 3, 5].map((i) => parseInt(hex.slice(i, i + 2), 16) / 255);
    const lin = (c) => (c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4);
    const luminance = 0.2126 * lin(r) + 0.7152 * lin(g) + 0.0722 * lin(b);
    const root = document.documentElement.style;
    root.setProperty("--brand", color);
    root.setProperty("--on-brand", luminance > 0.45 ? "#14201a" : "#ffffff");
  }

  // On phones the on-screen keyboard shrinks the visual viewport: the chat follows it, so the input stays
  // above the keyboard and the newest message in view.
  function fitViewport() {
    if (!window.visualViewport) return;
    document.documentElement.style.setProperty("--app-height", `${window.visualViewport.height}px`);
    log.scrollTop = log.scrollHeight;
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

  function timeOf(iso) {
    const time = document.createElement("time");
    const when = iso ? new Date(iso) : new Date();
    time.className = "bubble__time";
    time.dateTime = when.toISOString();
    time.textContent = timeFormat.format(when);
    return time;
  }

  function show(kind, text, id, createdAt, agent) {
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
      who.textContent = agent || "Support team";
      item.append(who);
    }
    const body = document.createElement("span");
    body.className = "bubble__text";
    if (kind === "customer") appendLinkified(body, text);
    else appendMarkdown(body, text);
    item.append(body, timeOf(createdAt));
    log.append(item);
    log.scrollTop = log.scrollHeight;
  }

  function showStatus(state) {
    presence.className = "chat__presence chat__presence--" + state.status;
    presenceLabel.textContent = state.label;
    agentName = state.agent;
    typing.hidden = !state.agent_typing;
    typingLabel.textContent = `${agentName || "Someone from our team"} is typing...`;
    if (state.agent_typing) log.scrollTop = log.scrollHeight;
  }

  function handleEvent(block) {
    let name = "message";
    const data = [];
    for (const line of block.split("\n")) {
      if (line.startsWith("event:")) name = line.slice(6).trim();
      else if (line.startsWith("data:")) data.push(line.slice(5).trimStart());
    }
    if (!data.length) return;
    const payload = JSON.parse(data.join("\n"));
    if (name === "status") showStatus(payload);
    else if (name === "messages") {
      for (const message of payload) {
        const kind = message.direction === "in" ? "customer" : message.author;
        show(kind, message.text, message.id, message.created_at, message.agent);
      }
    }
  }

  // One event stream at a time, for the current session; reopened whenever it ends.
  async function listen() {
    for (;;) {
      if (!opened()) {
        await sleep(400); // nothing to hear before the first message opens the session
        continue;
      }
      const forSession = sessionId;
      try {
        const response = await fetch(sessionUrl(`events?after=${lastId}`), {
          headers: headers({ Accept: "text/event-stream" }),
          cache: "no-store",
        });
        if (refused(response)) {
          if (forSession === sessionId) startSession();
          continue;
        }
        if (!response.ok || !response.body) {
          await sleep(3000);
          continue;
        }
        const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
        let buffer = "";
        for (;;) {
          const { value, done } = await reader.read();
          if (done || forSession !== sessionId) break;
          buffer += value;
          let end;
          while ((end = buffer.indexOf("\n\n")) >= 0) {
            handleEvent(buffer.slice(0, end));
            buffer = buffer.slice(end + 2);
          }
        }
        reader.cancel().catch(() => {});
      } catch (error) {
        await sleep(2000); // offline for a moment: the next stream catches up from lastId
      }
    }
  }

  // The agent sees "typing" while the customer types: said at most every TYPING_EVERY_MS, and "stopped"
  // when the box is emptied or left.
  let typingSaidAt = 0;
  function sayTyping(isTyping) {
    if (!opened()) return;
    const now = Date.now();
    if (isTyping && now - typingSaidAt < TYPING_EVERY_MS) return;
    if (!isTyping && !typingSaidAt) return;
    typingSaidAt = isTyping ? now : 0;
    fetch(sessionUrl("typing"), {
      method: "POST",
      headers: headers({ "Content-Type": "application/json" }),
      body: JSON.stringify({ typing: isTyping }),
    }).catch(() => {});
  }

  input.addEventListener("input", () => sayTyping(input.value.trim() !== ""));
  input.addEventListener("blur", () => sayTyping(false));

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
          headers: headers({ "Content-Type": "application/json" }),
          body: JSON.stringify({ session_id: sessionId, text: text, message_id: messageId }),
        });
        const body = await response.json();
        if (refused(response) && attempt === 0) {
          startSession(); // the old session can't be written any more: this message opens a new one
          continue;
        }
        if (response.status === 503) {
          status.textContent = "We're busy - retrying...";
          await sleep(1500 * (attempt + 1));
          continue;
        }
        if (!response.ok) {
          status.textContent = body.error || "Sorry, that message could not be sent.";
          break;
        }
        if (body.session_token && embedded) localStorage.setItem(TOKEN, body.session_token);
        localStorage.setItem(OPENED, sessionId);
        typingSaidAt = 0; // sending ends typing on the server too
        input.value = "";
        status.textContent = "";
        show("customer", text, body.message_id);
        for (const reply of body.replies) show("bot", reply.text, reply.id);
        break;
      } catch (error) {
        status.textContent = "Connection lost - retrying...";
        await sleep(1500 * (attempt + 1));
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

  // In the widget's frame, the close button asks the page around it (widget.js) to hide the chat.
  const close = document.getElementById("close");
  if (close) close.addEventListener("click", () => window.parent.postMessage({ socialbot: "close" }, "*"));

  applyColor(chat.dataset.color || "");
  if (window.visualViewport) window.visualViewport.addEventListener("resize", fitViewport);
  fitViewport();
  listen();
})();
