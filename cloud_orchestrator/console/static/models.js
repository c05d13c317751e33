/* Models: every model, and one model's versions with lineage, signer, size, evaluation,
   publish time and where each version runs. */
"use strict";
(() => {
  const { api, el, table, when, bytes, content, fail, data: page } = C;
  async function list() {
    const data = await api("GET", "/api/v1/models");
    const rows = data.models.map(m => el("tr", { "data-model": m.name },
      el("td", {}, el("a", { href: "/models/" + encodeURIComponent(m.name) }, m.name)),
      el("td", {}, m.versions), el("td", {}, m.latest_version), el("td", {}, when(m.latest_published_at)), el("td", {}, m.gateways)));
    content(rows.length ? table(["Model", "Versions", "Latest", "Published", "Gateways running it"], rows, { id: "models-table" })
      : el("p", {}, "No model is published yet."));
  }
  function evaluation(block) {
    const entries = Object.entries(block || {});
    if (!entries.length) return "-";
    return el("dl", { class: "evaluation" }, entries.map(([k, v]) => [el("dt", {}, k), el("dd", {}, typeof v === "object" ? JSON.stringify(v) : String(v))]));
  }
  async function detail(name) {
    const data = await api("GET", "/api/v1/models/" + encodeURIComponent(name));
    const rows = data.versions.map(v => el("tr", { "data-version": v.version },
      el("td", {}, v.version), el("td", {}, v.parent_version || "-"), el("td", {}, el("code", {}, v.key_id)),
      el("td", {}, bytes(v.size_bytes)), el("td", {}, evaluation(v.evaluation)), el("td", {}, when(v.published_at)),
      el("td", {}, v.published_by), el("td", {}, v.feedback_policy || "aggregates"),
      el("td", {}, `${v.running_on} gateways` + (v.running_gateways.length ? ": " + v.running_gateways.join(", ") : "")),
      el("td", {}, el("a", { href: `/feedback?model=${encodeURIComponent(name)}&versions=${encodeURIComponent(v.version)}` }, "feedback"))));
    content(el("p", {}, el("a", { href: "/models" }, "All models")),
      table(["Version", "Parent", "Signer key id", "Size", "Evaluation", "Published", "By", "Feedback", "Runs on", ""], rows, { id: "versions-table" }));
  }
  (page.model ? detail(page.model) : list()).catch(fail);
})();
