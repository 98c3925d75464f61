// The staff console's behaviour: live updates over one server-sent event stream (/console/events), the
// unread count in the tab title and desktop notifications, keyboard shortcuts with their help overlay, canned
// replies, and small helpers driven by data-* attributes (the pages carry no inline script).
// Customer text arrives only inside HTML the server rendered with escaping; this file never builds HTML from
// text, and sets any text it writes with textContent.
(function () {
  "use strict";
  document.documentElement.classList.add("js");
  const body = document.body;

  // ----- Times in the reader's own time zone -------------------------------------------------------------
  const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
  const pad = (n) => String(n).padStart(2, "0");

  function localTime(node) {
    const iso = node.getAttribute("datetime");
    if (!iso) return;
    const date = new Date(/(Z|[+-]\d\d:?\d\d)$/i.test(iso) ? iso : iso + "Z");
    if (Number.isNaN(date.getTime())) return;
    const day = `${pad(date.getDate())} ${MONTHS[date.getMonth()]}`;
    const clock = `${pad(date.getHours())}:${pad(date.getMinutes())}`;
    const format = node.dataset.format;
    if (format === "date") node.textContent = `${day} ${date.getFullYear()}`;
    else if (format === "seconds") node.textContent = `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())} ${clock}:${pad(date.getSeconds())}`;
    else node.textContent = `${day} ${clock}`;
    node.title = date.toString();
  }

  function localTimes(root) {
    root.querySelectorAll("time.local").forEach(localTime);
  }
  localTimes(document);

  // ----- Lists the keyboard moves through (queue rows, the side list, search hits) ------------------------
  function listItems() {
    const list = document.querySelector("[data-list]");
    return list ? Array.from(list.querySelectorAll("[data-href]")).filter((item) => item.dataset.href) : [];
  }

  function selected() {
    return document.querySelector("[data-list] .is-selected");
  }

  function select(item) {
    const previous = selected();
    if (previous) previous.classList.remove("is-selected");
    if (!item) return;
    item.classList.add("is-selected");
    item.scrollIntoView({ block: "nearest" });
    body.dataset.selected = item.dataset.id || "";
  }

  function reselect() {
    const id = body.dataset.selected;
    if (!id) return;
    const item = document.querySelector(`[data-list] [data-id="${CSS.escape(id)}"]`);
    if (item) item.classList.add("is-selected");
  }

  document.addEventListener("click", (event) => {
    const row = event.target.closest("tr[data-href]");
    if (row && !event.target.closest("a, button, input, select, summary")) window.location.href = row.dataset.href;
  });

  // ----- Live updates ---------------------------------------------------------------------------------------
  const baseTitle = document.title;
  const workspace = document.querySelector(".workspace");
  const currentConversation = workspace ? workspace.dataset.conversationId : null;
  let lastCounts = null;

  function showCounts(counts) {
    document.querySelectorAll("[data-count]").forEach((badge) => {
      const value = counts[badge.dataset.count];
      badge.textContent = value ? String(value) : "";
    });
    document.title = counts.unread ? `(${counts.unread}) ${baseTitle}` : baseTitle;
    notify(counts);
    lastCounts = counts;
  }

  function notify(counts) {
    const newest = counts.newest;
    if (!lastCounts || !newest || !("Notification" in window) || Notification.permission !== "granted") return;
    const before = lastCounts.newest;
    const isNew = !before || before.conversation_id !== newest.conversation_id || before.text !== newest.text;
    if (!isNew || counts.unread < lastCounts.unread && before) return;
    if (!document.hidden && String(newest.conversation_id) === currentConversation) return;
    const note = new Notification(`${newest.name} is waiting`, { body: newest.text, tag: `conversation-${newest.conversation_id}` });
    note.onclick = () => {
      window.focus();
      window.location.href = `/console/conversations/${newest.conversation_id}`;
    };
  }

  function replaceRegion(name, html) {
    const region = document.querySelector(`[data-live-region="${name}"]`);
    if (!region) return;
    region.innerHTML = html;
    localTimes(region);
    reselect();
  }

  const log = document.getElementById("log");
  const seenInput = document.querySelector('.reply input[name="seen_message_id"]');

  function appendMessages(html, lastId) {
    if (!log) return;
    const nearBottom = log.scrollHeight - log.scrollTop - log.clientHeight < 80;
    const holder = document.createElement("template");
    holder.innerHTML = html;
    holder.content.querySelectorAll("li[data-id]").forEach((item) => {
      if (log.querySelector(`[data-id="${CSS.escape(item.dataset.id)}"]`)) item.remove();
    });
    localTimes(holder.content);
    log.append(holder.content);
    if (nearBottom) log.scrollTop = log.scrollHeight;
    // The agent now has these messages on screen: the reply form must not warn that the customer "wrote again
    // meanwhile" about a message it just showed (the collision guard compares ids).
    if (seenInput && Number(seenInput.value) < lastId) seenInput.value = String(lastId);
  }

  if (body.dataset.live && "EventSource" in window) {
    const source = new EventSource(body.dataset.live);
    const on = (name, handler) => source.addEventListener(name, (event) => handler(JSON.parse(event.data)));
    on("counts", showCounts);
    on("queue", (data) => {
      replaceRegion("queue", data.html);
      const count = document.getElementById("queue-count");
      if (count) count.textContent = String(data.count);
      const empty = document.getElementById("queue-empty");
      if (empty) empty.hidden = data.count > 0;
    });
    on("list", (data) => replaceRegion("list", data.html));
    on("status", (data) => {
      replaceRegion("status", data.html);
      if (workspace) workspace.dataset.state = data.state;
    });
    on("messages", (data) => appendMessages(data.html, data.last_id));
    on("typing", (data) => {
      const note = document.getElementById("customer-typing");
      if (!note) return;
      const nearBottom = log && log.scrollHeight - log.scrollTop - log.clientHeight < 80;
      note.hidden = !data.customer;
      if (nearBottom) log.scrollTop = log.scrollHeight;
    });
  }

  // ----- Desktop notifications (asked for on a click, as browsers require) ------------------------------
  const notifyButton = document.getElementById("notify");
  if (notifyButton && "Notification" in window && Notification.permission === "default") {
    notifyButton.hidden = false;
    notifyButton.addEventListener("click", () => {
      Notification.requestPermission().then(() => { notifyButton.hidden = true; });
    });
  }

  // ----- Popovers and menus: one open at a time, closed by a click elsewhere or Escape -------------------
  function closePopovers(except) {
    document.querySelectorAll("details[data-popover][open], details[data-menu][open]").forEach((details) => {
      if (details !== except) details.open = false;
    });
  }
  document.addEventListener("click", (event) => {
    closePopovers(event.target.closest("details[data-popover], details[data-menu]"));
  });

  // ----- Small behaviours driven by data attributes ----------------------------------------------------------
  document.querySelectorAll("form[data-autosubmit] select").forEach((control) => {
    control.addEventListener("change", () => control.form.requestSubmit());
  });
  document.addEventListener("click", (event) => {
    const button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.dataset.confirm)) event.preventDefault();
  });
  document.querySelectorAll("[data-reveal]").forEach((hidden) => {
    // Revealing a message also reveals what belongs to it (the words the bot flagged in it).
    const reveal = () => (hidden.closest("[data-item]") || hidden).classList.add("revealed");
    hidden.addEventListener("click", reveal);
    hidden.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); reveal(); }
    });
  });
  document.querySelectorAll("input[data-tz-offset]").forEach((offset) => {
    const form = offset.form;
    const chosen = form.querySelector('input[type="datetime-local"]');
    if (chosen) {
      const now = new Date(Date.now() + 5 * 60 * 1000);
      chosen.min = `${now.getFullYear()}-${pad(now.getMonth() + 1)}-${pad(now.getDate())}T${pad(now.getHours())}:${pad(now.getMinutes())}`;
    }
    form.addEventListener("submit", () => {
      const when = chosen && chosen.value ? new Date(chosen.value) : new Date();
      offset.value = String(when.getTimezoneOffset());
    });
  });

  // ----- The conversation: reply box, canned replies ----------------------------------------------------
  const reply = document.getElementById("reply-text");
  const canned = document.getElementById("canned");
  const cannedFilter = document.getElementById("canned-filter");
  const cannedItems = () => Array.from(document.querySelectorAll(".canned__item")).filter((item) => !item.parentElement.hidden);

  if (log && !window.location.hash) log.scrollTop = log.scrollHeight;
  document.querySelectorAll("[data-focus-reply]").forEach((link) => link.addEventListener("click", (event) => {
    if (reply) { event.preventDefault(); reply.focus(); }
  }));

  function filterCanned(text) {
    const wanted = text.trim().toLowerCase();
    document.querySelectorAll(".canned__item").forEach((item) => {
      const haystack = `${item.dataset.shortcut} ${item.textContent}`.toLowerCase();
      item.parentElement.hidden = wanted !== "" && !haystack.includes(wanted);
      item.classList.remove("is-selected");
    });
    const first = cannedItems()[0];
    if (first) first.classList.add("is-selected");
  }

  function insertCanned(item) {
    if (!reply || !item) return;
    const text = item.dataset.text;
    if (/^\/[\w-]*$/.test(reply.value)) {
      reply.value = text;
    } else {
      const start = reply.selectionStart, end = reply.selectionEnd;
      reply.value = reply.value.slice(0, start) + text + reply.value.slice(end);
    }
    canned.open = false;
    reply.focus();
    reply.setSelectionRange(reply.value.length, reply.value.length);
  }

  function moveCanned(step) {
    const items = cannedItems();
    if (!items.length) return;
    const at = items.findIndex((item) => item.classList.contains("is-selected"));
    items.forEach((item) => item.classList.remove("is-selected"));
    const next = items[Math.min(items.length - 1, Math.max(0, at + step))];
    next.classList.add("is-selected");
    next.scrollIntoView({ block: "nearest" });
  }

  if (canned) {
    canned.addEventListener("toggle", () => {
      if (canned.open && cannedFilter && document.activeElement !== reply) { filterCanned(cannedFilter.value); cannedFilter.focus(); }
    });
    canned.addEventListener("click", (event) => {
      const item = event.target.closest(".canned__item");
      if (item) insertCanned(item);
    });
    if (cannedFilter) {
      cannedFilter.addEventListener("input", () => filterCanned(cannedFilter.value));
      cannedFilter.addEventListener("keydown", (event) => {
        if (event.key === "ArrowDown" || event.key === "ArrowUp") { event.preventDefault(); moveCanned(event.key === "ArrowDown" ? 1 : -1); }
        else if (event.key === "Enter") { event.preventDefault(); insertCanned(document.querySelector(".canned__item.is-selected")); }
        else if (event.key === "Escape") { canned.open = false; if (reply) reply.focus(); }
      });
    }
  }

  if (reply) {
    reply.addEventListener("input", () => {
      const typed = /^\/([\w-]*)$/.exec(reply.value);
      if (canned && typed) {
        canned.open = true;
        if (cannedFilter) cannedFilter.value = typed[1];
        filterCanned(typed[1]);
      } else if (canned && canned.open && reply.value.startsWith("/") === false) {
        canned.open = false;
      }
    });
    reply.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && (event.ctrlKey || event.metaKey)) {
        event.preventDefault();
        if (reply.value.trim()) reply.form.requestSubmit();
        return;
      }
      if (!canned || !canned.open) return;
      if (event.key === "ArrowDown" || event.key === "ArrowUp") { event.preventDefault(); moveCanned(event.key === "ArrowDown" ? 1 : -1); }
      else if (event.key === "Enter" || event.key === "Tab") {
        const choice = document.querySelector(".canned__item.is-selected");
        if (choice) { event.preventDefault(); insertCanned(choice); }
      } else if (event.key === "Escape") { event.preventDefault(); canned.open = false; }
    });
  }

  // ----- The agent typing, shown in the customer's web chat: said at most every TYPING_EVERY_MS while the
  // reply box has text, "stopped" when it empties or loses focus (sending ends it on the server too).
  const typingUrl = reply && reply.form.dataset.typingUrl;
  if (typingUrl) {
    const TYPING_EVERY_MS = 2500;
    const token = reply.form.querySelector('input[name="csrf"]').value;
    let typingSaidAt = 0;
    const sayTyping = (isTyping) => {
      const now = Date.now();
      if (isTyping && now - typingSaidAt < TYPING_EVERY_MS) return;
      if (!isTyping && !typingSaidAt) return;
      typingSaidAt = isTyping ? now : 0;
      fetch(typingUrl, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRF-Token": token },
        body: JSON.stringify({ typing: isTyping }),
      }).catch(() => {});
    };
    reply.addEventListener("input", () => sayTyping(reply.value.trim() !== ""));
    reply.addEventListener("blur", () => sayTyping(false));
    reply.form.addEventListener("submit", () => { typingSaidAt = 0; });
  }

  // ----- Keyboard shortcuts ---------------------------------------------------------------------------------
  const overlay = document.getElementById("shortcuts");
  let lastFocus = null;

  function openShortcuts() {
    if (!overlay) return;
    lastFocus = document.activeElement;
    overlay.hidden = false;
    overlay.querySelector("[data-close-shortcuts]").focus();
  }
  function closeShortcuts() {
    if (!overlay || overlay.hidden) return;
    overlay.hidden = true;
    if (lastFocus) lastFocus.focus();
  }
  document.querySelectorAll("[data-open-shortcuts]").forEach((button) => button.addEventListener("click", openShortcuts));
  document.querySelectorAll("[data-close-shortcuts]").forEach((button) => button.addEventListener("click", closeShortcuts));
  if (overlay) overlay.addEventListener("click", (event) => { if (event.target === overlay) closeShortcuts(); });

  function click(id) {
    const target = document.getElementById(id);
    if (target) target.click();
  }

  function step(offset) {
    const items = listItems();
    if (!items.length) return;
    if (currentConversation && !selected()) {
      // In a conversation, j/k open the next or previous conversation of the list at once.
      const at = items.findIndex((item) => item.dataset.id === currentConversation);
      const next = items[at === -1 ? 0 : at + offset];
      if (next) window.location.href = next.dataset.href;
      return;
    }
    const at = items.indexOf(selected());
    select(items[at === -1 ? 0 : Math.min(items.length - 1, Math.max(0, at + offset))]);
  }

  let pendingG = false;
  document.addEventListener("keydown", (event) => {
    if (overlay && !overlay.hidden) {
      if (event.key === "Escape") { event.preventDefault(); closeShortcuts(); }
      return;
    }
    const target = event.target;
    const typing = target.closest && target.closest("input, textarea, select, [contenteditable]");
    if (typing) {
      if (event.key === "Escape" && target !== reply) target.blur();
      else if (event.key === "Escape" && target === reply && !(canned && canned.open)) reply.blur();
      return;
    }
    if (event.key === "Escape") { closePopovers(null); return; }
    if (event.ctrlKey || event.metaKey || event.altKey) return;
    if (pendingG) {
      pendingG = false;
      if (event.key === "q") { event.preventDefault(); window.location.href = "/console"; }
      return;
    }
    const focus = (id) => { const node = document.getElementById(id); if (node) { event.preventDefault(); node.focus(); } };
    switch (event.key) {
      case "?": event.preventDefault(); openShortcuts(); break;
      case "/": focus("search"); break;
      case "j": event.preventDefault(); step(1); break;
      case "k": event.preventDefault(); step(-1); break;
      case "Enter":
      case "o": {
        const item = selected();
        if (item) { event.preventDefault(); window.location.href = item.dataset.href; }
        break;
      }
      case "r": focus("reply-text"); break;
      case "n": focus("note-text"); break;
      case "e": event.preventDefault(); click("resolve"); break;
      case "t": event.preventDefault(); click("take"); break;
      case "s": {
        const snooze = document.getElementById("snooze");
        if (snooze) {
          event.preventDefault();
          snooze.open = true;
          const first = snooze.querySelector("button");
          if (first) first.focus();
        }
        break;
      }
      case "g": pendingG = true; break;
      default: break;
    }
  });
})();
