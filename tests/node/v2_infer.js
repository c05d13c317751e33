// A second-language client for the gateway's V2 service (run by tests/test_v2_node.py).
//
// Usage: node tests/node/v2_infer.js HOST:PORT
// Loads protos/inference/grpc_service.proto with @grpc/proto-loader, sends one
// ModelInfer to the `tensoronly` model (input FP32 [2, 2, 4, 4], raw contents,
// values sin(i)), and prints JSON: the input it sent and the response's outputs.
"use strict";

const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");

const PROTOS = path.resolve(__dirname, "..", "..", "protos");
const SHAPE = [2, 2, 4, 4];

function main() {
  const target = process.argv[2];
  if (!target) {
    console.error("usage: node v2_infer.js HOST:PORT");
    process.exit(2);
  }
  const definition = protoLoader.loadSync("inference/grpc_service.proto", {
    includeDirs: [PROTOS],
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
  });
  const inference = grpc.loadPackageDefinition(definition).inference;
  const client = new inference.GRPCInferenceService(target, grpc.credentials.createInsecure());

  const count = SHAPE.reduce((a, b) => a * b, 1);
  const values = Float32Array.from({ length: count }, (_, i) => Math.sin(i));
  const raw = Buffer.alloc(count * 4);
  values.forEach((v, i) => raw.writeFloatLE(v, i * 4));

  const request = {
    model_name: "tensoronly",
    id: "node-1",
    inputs: [{ name: "input", datatype: "FP32", shape: SHAPE }],
    raw_input_contents: [raw],
  };
  const deadline = new Date(Date.now() + 10000);
  client.ModelInfer(request, { deadline }, (error, response) => {
    client.close();
    if (error) {
      console.error(`ModelInfer failed: ${error.code} ${error.details}`);
      process.exit(1);
    }
    const outputs = response.outputs.map((output, index) => {
      const bytes = response.raw_output_contents[index];
      const data = [];
      for (let offset = 0; offset < bytes.length; offset += 4) {
        data.push(bytes.readFloatLE(offset));
      }
      return {
        name: output.name,
        datatype: output.datatype,
        shape: output.shape.map(Number),
        data,
      };
    });
    const result = {
      model_name: response.model_name,
      model_version: response.model_version,
      id: response.id,
      input: { shape: SHAPE, data: Array.from(values) },
      outputs,
    };
    console.log(JSON.stringify(result));
  });
}

main();
