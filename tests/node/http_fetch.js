// Node's built-in fetch against the gateway's HTTP face (run by
// tests/e2e/edge_server/http/test_node_fetch.py); no package needed.
//
// Usage: node tests/node/http_fetch.js BASE_URL IMAGE_PATH
// Sends the image as multipart (FormData + Blob) to /predict, a V2 JSON infer with an
// all-zero digits input, and an infer with a wrong datatype; prints JSON of what came back.
"use strict";

const fs = require("fs");

async function main() {
  const [base, imagePath] = process.argv.slice(2);
  if (!base || !imagePath) {
    console.error("usage: node http_fetch.js BASE_URL IMAGE_PATH");
    process.exit(2);
  }
  const form = new FormData();
  form.append("image", new Blob([fs.readFileSync(imagePath)], { type: "image/png" }), "digit.png");
  const predict = await fetch(`${base}/predict?top_k=2`, { method: "POST", body: form });

  const input = { name: "input", datatype: "FP32", shape: [1, 1, 28, 28], data: new Array(784).fill(0) };
  const infer = await fetch(`${base}/v2/models/digits/infer`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ id: "node-1", inputs: [input] }),
  });
  const wrong = await fetch(`${base}/v2/models/digits/infer`, {
    method: "POST",
    body: JSON.stringify({ inputs: [{ ...input, datatype: "INT8" }] }),
  });
  console.log(JSON.stringify({
    predict: { status: predict.status, body: await predict.json() },
    infer: { status: infer.status, body: await infer.json() },
    wrong: { status: wrong.status, body: await wrong.json() },
  }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
