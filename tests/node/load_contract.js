// Loads protos/ with Node's @grpc/proto-loader, as a JavaScript client would, and
// prints each SessionService method with its streaming shape.
const loader = require("@grpc/proto-loader");

const definition = loader.loadSync("sessions/v1/sessions.proto", {
  includeDirs: [process.argv[2]],
});
const service = definition["sessions.v1.SessionService"];
const methods = Object.keys(service)
  .sort()
  .map((name) => `${name}:${service[name].responseStream ? "stream" : "unary"}`);
console.log(methods.join(" "));
