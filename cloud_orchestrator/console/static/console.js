/* Shared helpers of the console pages: JSON API calls (CSRF header on writes), DOM
   building without innerHTML (text is never parsed as HTML), times and sizes. */
"use strict";
const C = (() => {
  const csrf = document.querySelector('meta[name="csrf-token"]');
  async function api(method, path, body) {
    const headers = { Accept: "application/json" };
    if (method !== "GET") {
      headers["X-CSRF-Token"] = csrf ? csrf.content : "";
      headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, {
      method, headers, credentials: "same-origin",
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    if (response.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname + location.search); }
    const data = await response.json().catch(() => ({}));
    if (!response.ok) {
      const error = new Error((data.error && data.error.message) || response.statusText);
      error.status = response.status;
      throw error;
    }
    return data;
  }
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [k, v] of Object.entries(attrs || {})) {
      if (v === undefined || v === null || v === false) continue;
      if (k.startsWith("on")) node.addEventListener(k.slice(2), v);
      else node.setAttribute(k, v === true ? "" : v);
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : document.createTextNode(String(child)));
    }
    return node;
  }
  function table(headers, rows, attrs) {
    return el("table", attrs || {}, el("thead", {}, el("tr", {}, headers.map(h => el("th", {}, h)))),
      el("tbody", {}, rows));
  }
  function when(stamp) {
    if (!stamp) return "never";
    return new Date(stamp * 1000).toISOString().replace("T", " ").slice(0, 19) + " UTC";
  }
  function ago(stamp) {
    if (!stamp) return "never";
    const s = Math.max(0, Math.round(Date.now() / 1000 - stamp));
    if (s < 120) return s + " s ago";
    if (s < 7200) return Math.round(s / 60) + " min ago";
    if (s < 172800) return Math.round(s / 3600) + " h ago";
    return Math.round(s / 86400) + " d ago";
  }
  function bytes(n) {
    if (n < 1024) return n + " B";
    if (n < 1048576) return (n / 1024).toFixed(1) + " KiB";
    return (n / 1048576).toFixed(1) + " MiB";
  }
  function content(...children) {
    const main = document.getElementById("content");
    main.replaceChildren(...children.flat());
    return main;
  }
  function fail(error) {
    const box = document.getElementById("message") || content(el("p", { id: "message" }));
    box.className = "error";
    box.setAttribute("role", "alert");
    box.textContent = error.message;
  }
  return { api, el, table, when, ago, bytes, content, fail, data: document.body.dataset };
})();
