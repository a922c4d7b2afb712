// Loads protos/ with Node's @grpc/proto-loader, as a JavaScript client would, and
// prints each SessionService method with its streaming shape. The include dirs are
// protos/ and where the googleapis .proto files are (google/api/field_behavior.proto).
const loader = require("@grpc/proto-loader");

const definition = loader.loadSync("agentsessions/sessions/v1/sessions.proto", {
  includeDirs: process.argv.slice(2),
});
const service = definition["agentsessions.sessions.v1.SessionService"];
const methods = Object.keys(service)
  .sort()
  .map((name) => `${name}:${service[name].responseStream ? "stream" : "unary"}`);
console.log(methods.join(" "));
