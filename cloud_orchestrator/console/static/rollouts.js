/* Rollouts: the newest rollouts with their progress; refreshed while any is active. */
"use strict";
(() => {
  const { api, el, table, when, content, fail } = C;
  async function load() {
    try {
      const data = await api("GET", "/api/v1/rollouts");
      const rows = data.rollouts.map(r => el("tr", { "data-rollout": r.id },
        el("td", {}, el("a", { href: "/rollouts/" + encodeURIComponent(r.id) }, r.id)),
        el("td", {}, r.model_name + " " + r.version), el("td", {}, r.strategy),
        el("td", {}, el("span", { class: "state " + r.state }, r.state)),
        el("td", {}, r.succeeded + " / " + r.targets), el("td", {}, when(r.created_at))));
      content(el("p", {}, el("a", { href: "/deploy", class: "button" }, "New rollout")),
        rows.length ? table(["Rollout", "Model", "Strategy", "State", "Succeeded", "Created"], rows, { id: "rollouts-table" })
          : el("p", {}, "No rollout yet."), el("p", { id: "message" }));
      if (data.rollouts.some(r => r.state === "PENDING" || r.state === "RUNNING")) setTimeout(load, 2000);
    } catch (e) { fail(e); }
  }
  load();
})();
