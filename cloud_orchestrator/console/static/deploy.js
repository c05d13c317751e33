/* Deploy form: model, version, selector, strategy, max parallel, failure threshold;
   "Preview" shows the waves the rollout would run now (dry run), "Deploy" starts it. */
"use strict";
(() => {
  const { api, el, content, fail } = C;
  const field = (id, label, value, attrs) => el("p", {}, el("label", { for: id }, label),
    el("input", Object.assign({ id, name: id, value }, attrs || {})));
  const model = el("select", { id: "model", name: "model" });
  const version = el("select", { id: "version", name: "version" });
  const preview = el("div", { id: "preview" });
  const form = el("form", { id: "deploy-form", class: "form", onsubmit: e => { e.preventDefault(); start(); } },
    el("p", {}, el("label", { for: "model" }, "Model"), model),
    el("p", {}, el("label", { for: "version" }, "Version"), version),
    field("selector", "Gateways (selector)", "all"),
    field("strategy", "Strategy", "canary:1", { title: "all | canary:N | waves:1,10%,50%,100%" }),
    field("max_parallel", "Max parallel", "4", { type: "number", min: 1 }),
    field("max_failures", "Failure threshold (count or %)", "0"),
    field("watch_seconds", "Watch seconds", "10", { type: "number", min: 0, step: "any" }),
    el("p", {}, el("button", { type: "button", id: "dry-run", onclick: dryRun }, "Preview waves"), " ",
      el("button", { type: "submit", id: "start" }, "Deploy")));
  content(form, el("p", { id: "message" }), preview);

  function body() {
    const value = id => document.getElementById(id).value;
    return { model: model.value, version: version.value, selector: value("selector"), strategy: value("strategy"),
      max_parallel: Number(value("max_parallel")), max_failures: value("max_failures"), watch_seconds: Number(value("watch_seconds")) };
  }
  async function dryRun() {
    document.getElementById("message").textContent = "";
    try {
      const plan = await api("POST", "/api/v1/rollouts/dry-run", body());
      preview.replaceChildren(el("h2", {}, `Dry run: ${plan.model} ${plan.version} to ${plan.gateways} gateways`),
        el("ol", { id: "planned-waves" }, plan.waves.map(w => el("li", { "data-wave": w.wave }, w.gateways.join(", ")))));
    } catch (e) { preview.replaceChildren(); fail(e); }
  }
  async function start() {
    try {
      const record = await api("POST", "/api/v1/rollouts", body());
      location.href = "/rollouts/" + encodeURIComponent(record.id);
    } catch (e) { fail(e); }
  }
  async function versions() {
    const detail = await api("GET", "/api/v1/models/" + encodeURIComponent(model.value));
    version.replaceChildren(...detail.versions.map(v => el("option", { value: v.version }, v.version)));
  }
  model.addEventListener("change", () => versions().catch(fail));
  api("GET", "/api/v1/models").then(data => {
    model.replaceChildren(...data.models.map(m => el("option", { value: m.name }, m.name)));
    if (data.models.length) return versions();
    fail(new Error("No model is published yet (edge-orchestrator publish)."));
  }).catch(fail);
})();
