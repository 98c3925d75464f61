// The insights dashboard: fetch the figures as JSON and draw them with Chart.js (vendored, no CDN).
// Customer text (content gaps, contact names) goes into the page only through textContent.
(function () {
  "use strict";
  const root = document.getElementById("insights");
  const status = document.getElementById("insights-status");
  const palette = ["#2f6b4f", "#4e79a7", "#f28e2b", "#e15759", "#76b7b2", "#edc948", "#b07aa1", "#9c755f"];
  const stageColours = {
    detractor: "#e15759", "tire-kicker": "#bab0ac", owner: "#4e79a7", loyal: "#76b7b2", advocate: "#2f6b4f",
  };
  const sentimentColours = { negative: "#e15759", neutral: "#bab0ac", positive: "#59a14f", unknown: "#dddddd" };
  window.insightsCharts = [];

  function chart(id, config) {
    const made = new Chart(document.getElementById(id), config);
    window.insightsCharts.push(made);
    return made;
  }

  function datasets(series, colours, extra) {
    return Object.keys(series).map((key, i) => Object.assign({
      label: key,
      data: series[key],
      backgroundColor: (colours && colours[key]) || palette[i % palette.length],
      borderColor: (colours && colours[key]) || palette[i % palette.length],
    }, extra || {}));
  }

  const stacked = {
    responsive: true, maintainAspectRatio: false, animation: false,
    scales: { x: { stacked: true }, y: { stacked: true, beginAtZero: true, ticks: { precision: 0 } } },
    plugins: { legend: { position: "bottom" } },
  };

  function shortDays(days) { return days.map((d) => d.slice(5)); }

  function cell(row, text, tag) {
    const el = document.createElement(tag || "td");
    el.textContent = text;
    row.appendChild(el);
    return el;
  }

  function seconds(value) {
    if (value === null || value === undefined) return "-";
    if (value < 120) return value.toFixed(1) + " s";
    if (value < 7200) return (value / 60).toFixed(1) + " min";
    return (value / 3600).toFixed(1) + " h";
  }

  const tickLabels = { 0.1: "0.1 s", 1: "1 s", 10: "10 s", 60: "1 min", 600: "10 min", 3600: "1 h", 36000: "10 h", 345600: "4 d" };

  function target(value) {
    if (value % 3600 === 0) return value / 3600 + " h";
    if (value % 60 === 0) return value / 60 + " min";
    return value + " s";
  }

  function draw(data) {
    const labels = shortDays(data.days);
    chart("chart-volume-channel", { type: "bar", data: { labels, datasets: datasets(data.volume_by_channel) }, options: stacked });
    chart("chart-volume-intent", { type: "bar", data: { labels, datasets: datasets(data.volume_by_intent) }, options: stacked });
    chart("chart-sentiment", {
      type: "line",
      data: { labels, datasets: datasets(data.sentiment, sentimentColours, { tension: 0.25, fill: false, pointRadius: 2 }) },
      options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: "bottom" } },
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
    });

    const times = data.response_times;
    const channels = Object.keys(times.by_channel);
    const clocks = [
      ["bot_response", "bot", "#2f6b4f"],
      ["first_human_response", "first reply by a person", "#4e79a7"],
      ["waiting_for_person", "waiting for a person", "#f28e2b"],
      ["resolution", "resolution", "#b07aa1"],
    ];
    chart("chart-response-times", {
      type: "bar",
      data: {
        labels: channels,
        datasets: clocks.map(([key, label, colour]) => ({
          label: label + ", median",
          data: channels.map((c) => (times.by_channel[c][key].median === null ? null : Math.max(0.1, times.by_channel[c][key].median))),
          backgroundColor: colour,
        })),
      },
      options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: "bottom" } },
        // Seconds for the bot, hours for a resolution: a log scale shows both (a 0.0 s reply is drawn at 0.1 s).
        scales: { y: { type: "logarithmic", min: 0.01, title: { display: true, text: "log scale" },
          // ticks a reader knows: 0.1 s, 1 s, 10 s, 1 min, 10 min, 1 h, 10 h, 4 d
          afterBuildTicks: (axis) => {
            axis.ticks = [0.1, 1, 10, 60, 600, 3600, 36000, 345600]
              .filter((v) => v >= axis.min && v <= axis.max).map((value) => ({ value }));
          },
          ticks: { callback: (v) => tickLabels[v] } } } },
    });
    // The median, and the 90th percentile under it.
    function both(row, t) {
      const el = cell(row, seconds(t.median));
      el.className = "nowrap";
      if (t.count) {
        const p90 = document.createElement("span");
        p90.className = "words";
        p90.textContent = "p90 " + seconds(t.p90);
        el.appendChild(p90);
      }
    }
    const breaches = (sla) => sla.breaches + " of " + sla.handovers;
    const channelTable = document.getElementById("channel-times");
    const channelHead = channelTable.insertRow();
    ["channel", "bot", "first by a person", "waiting for a person", "resolution", "SLA breaches"]
      .forEach((t) => cell(channelHead, t, "th"));
    channels.forEach((c) => {
      const t = times.by_channel[c];
      const row = channelTable.insertRow();
      row.dataset.channel = c;
      cell(row, c);
      clocks.forEach(([key]) => both(row, t[key]));
      cell(row, breaches(t.sla));
    });
    if (!channels.length) channelTable.insertRow().insertCell().textContent = "No conversations in this period.";

    const handled = data.handled;
    chart("chart-handled", {
      type: "doughnut",
      data: { labels: ["answered by the bot", "escalated to staff"],
        datasets: [{ data: [handled.bot || 0, handled.staff || 0], backgroundColor: ["#2f6b4f", "#f28e2b"] }] },
      options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: "bottom" } } },
    });
    const sla = times.overall.sla;
    document.getElementById("sla-summary").textContent =
      "Handovers to a person: " + sla.handovers + ". " + sla.answered + " answered (" + sla.answered_late +
      " after the " + target(times.target_seconds) + " target), " + sla.still_waiting + " still waiting (" +
      sla.still_waiting_past_target + " past it), " + sla.closed_unanswered + " closed without a staff reply. " +
      "SLA breaches: " + sla.breaches + ".";
    const agentTable = document.getElementById("agent-times");
    const agents = Object.entries(times.by_agent);
    if (agents.length) {
      const h = agentTable.insertRow();
      ["agent", "first reply", "waits ended", "wait (median)", "SLA breaches", "resolved"].forEach((t) => cell(h, t, "th"));
      agents.forEach(([agent, t]) => {
        const row = agentTable.insertRow();
        row.dataset.agent = agent;
        cell(row, agent);
        cell(row, seconds(t.first_human_response.median)).className = "nowrap";
        cell(row, String(t.waiting_for_person.count));
        cell(row, seconds(t.waiting_for_person.median)).className = "nowrap";
        cell(row, breaches(t.sla));
        cell(row, String(t.resolution.count));
      });
    }

    const topics = data.complaint_topics.topics;
    chart("chart-topics", {
      type: "bar",
      data: { labels: topics.map((t) => t.label),
        datasets: [{ label: "complaints", data: topics.map((t) => t.complaints), backgroundColor: "#e15759" }] },
      options: { indexAxis: "y", responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    });
    const weeks = data.complaint_topics.weeks;
    const topicTable = document.getElementById("topic-weeks");
    if (topics.length) {
      const h = topicTable.insertRow();
      cell(h, "topic", "th");
      weeks.forEach((w) => { cell(h, "w/c " + w.slice(5), "th").className = "nowrap"; });
      topics.forEach((t) => {
        const row = topicTable.insertRow();
        const name = cell(row, t.label);
        if (t.article_id) {
          const words = document.createElement("span");
          words.className = "words";
          words.textContent = t.words.join(", ");
          name.appendChild(words);
        }
        t.weekly.forEach((n) => cell(row, String(n)));
      });
    } else {
      topicTable.insertRow().insertCell().textContent = "No complaints grouped in this period.";
    }
    const rest = [];
    if (data.complaint_topics.other) rest.push(data.complaint_topics.other + " more in smaller topics");
    if (data.complaint_topics.ungrouped) rest.push(data.complaint_topics.ungrouped + " stored before vectors were kept (not grouped)");
    if (rest.length) document.getElementById("topics-note").textContent += " Not shown: " + rest.join("; ") + ".";

    // A funnel: the top rung (advocates) first, the widest at the bottom of the list.
    const ladder = data.ladder.slice().reverse();
    chart("chart-ladder", {
      type: "bar",
      data: { labels: ladder.map((s) => s.stage),
        datasets: [{ label: "contacts", data: ladder.map((s) => s.contacts),
          backgroundColor: ladder.map((s) => stageColours[s.stage] || "#999") }] },
      options: { indexAxis: "y", responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    });

    const moves = document.querySelector("#ladder-moves tbody");
    data.ladder_moves.forEach((m) => {
      const row = moves.insertRow();
      cell(row, m.contact);
      const move = cell(row, m.from + " \u2192 " + m.to);
      move.className = "move--" + m.direction;
      cell(row, m.reason).className = "reason";
      cell(row, m.at.slice(0, 16).replace("T", " ")).className = "nowrap";
    });
    document.getElementById("ladder-moves-empty").hidden = data.ladder_moves.length > 0;

    const articles = document.getElementById("top-articles");
    data.top_articles.forEach((a) => {
      const item = document.createElement("li");
      item.textContent = a.article + " \u2014 " + a.answers + (a.answers === 1 ? " answer" : " answers");
      articles.appendChild(item);
    });
    if (!data.top_articles.length) articles.textContent = "No answers from the knowledge base yet.";
    const gaps = document.getElementById("knowledge-gaps");
    data.knowledge_gaps.forEach((g) => {
      const item = document.createElement("li");
      item.className = "gap";
      const head = document.createElement("div");
      head.className = "gap__head";
      const label = document.createElement("strong");
      label.textContent = g.label;
      const count = document.createElement("span");
      count.className = "muted";
      count.textContent = " " + g.questions + (g.questions === 1 ? " question" : " questions") +
        ", last " + g.last_asked.slice(0, 10);
      head.append(label, count);
      if (root.dataset.canDraft) {
        const draft = document.createElement("a");
        draft.className = "button";
        draft.href = "/console/knowledge/draft?" + new URLSearchParams({ ids: g.message_ids.join(","), words: g.words.join(",") });
        draft.textContent = "Draft an article";
        head.appendChild(draft);
      }
      const examples = document.createElement("ul");
      examples.className = "gap__examples";
      g.examples.forEach((text) => {
        const example = document.createElement("li");
        example.textContent = text;
        examples.appendChild(example);
      });
      item.append(head, examples);
      gaps.appendChild(item);
    });
    if (!data.knowledge_gaps.length) {
      const none = document.createElement("li");
      none.className = "gaps__none";
      none.textContent = "None: no question of this period went unanswered.";
      gaps.appendChild(none);
    }
    const csat = document.getElementById("csat");
    const entries = Object.entries(data.csat);
    if (entries.length) {
      const h = csat.insertRow();
      ["channel", "average", "responses"].forEach((t) => cell(h, t, "th"));
      entries.forEach(([channel, c]) => {
        const row = csat.insertRow();
        cell(row, channel); cell(row, c.average.toFixed(2)); cell(row, String(c.responses));
      });
    } else {
      csat.insertRow().insertCell().textContent = "No CSAT answers yet.";
    }
    status.textContent = "Figures for " + data.days[0] + " to " + data.days[data.days.length - 1] + " (UTC).";
    root.dataset.ready = "true";
  }

  fetch(root.dataset.source, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then((response) => {
      if (!response.ok) throw new Error("the figures could not be loaded (HTTP " + response.status + ")");
      return response.json();
    })
    .then(draw)
    .catch((error) => { status.textContent = error.message; root.dataset.ready = "error"; });
})();
