/* One rollout: waves, each gateway's state and bytes sent, events with who asked for
   them, the halt reason; polled every second while it runs; cancel, resume, retry. */
"use strict";
(() => {
  const { api, el, table, when, bytes, content, fail, data: page } = C;
  const id = page.rollout;
  const path = "/api/v1/rollouts/" + encodeURIComponent(id);
  let timer = null;
  async function act(action) {
    try { render(await api("POST", path + "/" + action)); schedule(); } catch (e) { fail(e); }
  }
  function render(r) {
    const active = r.state === "PENDING" || r.state === "RUNNING";
    const total = r.waves.reduce((n, w) => n + w.gateways, 0);
    const done = r.waves.reduce((n, w) => n + (w.states.SUCCEEDED || 0), 0);
    const header = el("div", { class: "summary" },
      el("p", {}, el("span", { id: "rollout-state", class: "state " + r.state }, r.state), ` ${r.model_name} version ${r.version} to ${r.selector}`),
      el("p", {}, `strategy ${r.strategy}, max parallel ${r.max_parallel}, max failures ${r.max_failures}, watch ${r.watch_seconds} s; created by ${r.created_by || "-"} ${when(r.created_at)}`),
      el("p", { id: "progress" }, `${done} of ${total} gateways succeeded, wave ${Math.min(r.current_wave + 1, r.wave_count)} of ${r.wave_count}, ${bytes(r.bytes_sent)} sent`),
      el("progress", { max: total || 1, value: done }),
      r.reason ? el("p", { id: "reason", class: r.state === "HALTED" ? "error" : "" }, "Reason: " + r.reason) : null);
    const actions = el("p", { class: "actions" },
      el("button", { id: "cancel", disabled: !active, onclick: () => act("cancel") }, "Cancel"), " ",
      el("button", { id: "resume", disabled: r.state !== "CANCELLED", onclick: () => act("resume") }, "Resume"), " ",
      el("button", { id: "retry-failed", disabled: active || !r.waves.some(w => w.states.FAILED || w.states.SKIPPED || w.states.ROLLED_BACK),
        onclick: () => act("retry-failed") }, "Retry failed"));
    const waves = r.waves.map(w => el("li", { "data-wave": w.wave },
      `wave ${w.wave}: ${w.gateways} gateways - ` + Object.entries(w.states).map(([s, n]) => `${n} ${s}`).join(", ")));
    const targets = r.targets.map(t => el("tr", { "data-gateway": t.gateway_id, "data-state": t.state },
      el("td", {}, t.wave + 1), el("td", {}, t.gateway_id), el("td", {}, el("span", { class: "state " + t.state }, t.state)),
      el("td", {}, t.previous_version || "-"), el("td", {}, t.attempts), el("td", {}, bytes(t.bytes_sent)), el("td", {}, t.reason)));
    const events = r.events.map(e => el("tr", {}, el("td", {}, when(e.at)), el("td", {}, e.kind),
      el("td", {}, e.actor || "-"), el("td", {}, e.owner), el("td", {}, e.gateway_id), el("td", {}, e.detail)));
    content(header, actions, el("p", { id: "message" }), el("h2", {}, "Waves"), el("ol", { id: "waves" }, waves),
      el("h2", {}, "Gateways"), r.targets_total > r.targets.length ? el("p", { class: "hint" }, `the first ${r.targets.length} of ${r.targets_total}`) : null,
      table(["Wave", "Gateway", "State", "Previous", "Attempts", "Bytes sent", "Reason"], targets, { id: "targets" }),
      el("h2", {}, "Events"), table(["At", "Event", "Operator", "Orchestrator", "Gateway", "Detail"], events, { id: "events" }));
    return active;
  }
  function schedule() { clearTimeout(timer); timer = setTimeout(load, 1000); }
  async function load() {
    try { if (render(await api("GET", path))) schedule(); } catch (e) { fail(e); }
  }
  load();
})();
