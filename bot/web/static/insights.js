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

    const channels = Object.keys(data.response_times.by_channel);
    const times = data.response_times.by_channel;
    const metric = (name) => channels.map((c) => times[c][name]);
    chart("chart-response-times", {
      type: "bar",
      data: {
        labels: channels,
        datasets: [
          { label: "first response, median", data: metric("first_response_median"), backgroundColor: "#4e79a7" },
          { label: "first response, p90", data: metric("first_response_p90"), backgroundColor: "#a0cbe8" },
          { label: "resolution, median", data: metric("resolution_median"), backgroundColor: "#f28e2b" },
          { label: "resolution, p90", data: metric("resolution_p90"), backgroundColor: "#ffbe7d" },
        ],
      },
      options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: "bottom" } },
        scales: { y: { beginAtZero: true, title: { display: true, text: "seconds" } } } },
    });

    const handled = data.handled;
    chart("chart-handled", {
      type: "doughnut",
      data: { labels: ["answered by the bot", "escalated to staff"],
        datasets: [{ data: [handled.bot || 0, handled.staff || 0], backgroundColor: ["#2f6b4f", "#f28e2b"] }] },
      options: { responsive: true, maintainAspectRatio: false, animation: false, plugins: { legend: { position: "bottom" } } },
    });
    const handlerTable = document.getElementById("handler-times");
    const head = handlerTable.insertRow();
    ["", "conversations", "first response (median)", "p90", "resolution (median)", "p90"].forEach((t) => cell(head, t, "th"));
    Object.entries(data.response_times.by_handler).forEach(([handler, t]) => {
      const row = handlerTable.insertRow();
      cell(row, handler === "bot" ? "bot only" : "escalated");
      cell(row, String(t.conversations));
      [t.first_response_median, t.first_response_p90, t.resolution_median, t.resolution_p90]
        .forEach((v) => { cell(row, seconds(v)).className = "nowrap"; });
    });

    const topics = data.complaint_topics;
    chart("chart-topics", {
      type: "bar",
      data: { labels: topics.map((t) => (t.kind === "article" ? "KB: " : "word: ") + t.label),
        datasets: [{ label: "complaints", data: topics.map((t) => t.count), backgroundColor: "#e15759" }] },
      options: { indexAxis: "y", responsive: true, maintainAspectRatio: false, animation: false,
        plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } },
    });

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
    const gaps = document.getElementById("content-gaps");
    data.content_gaps.forEach((g) => {
      const item = document.createElement("li");
      item.textContent = g.text;
      const meta = document.createElement("span");
      meta.className = "muted";
      meta.textContent = " (" + g.channel + ", " + g.at.slice(0, 10) + ")";
      item.appendChild(meta);
      gaps.appendChild(item);
    });
    if (!data.content_gaps.length) gaps.textContent = "None: every question found an answer.";
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
