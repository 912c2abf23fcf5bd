// launch.mjs drives the official BinderHub JS client
// (@jupyterhub/binderhub-client, pinned in package.json) against a
// BinderHub, binderguard or the simulator, the way BinderHub's own UI does:
//
//   const image = new BinderRepository(providerSpec, new URL("build", base), {buildToken});
//   for await (const data of image.fetch()) { ... on "ready": image.close() ... }
//
// Usage: node launch.mjs BASE_URL PROVIDER_SPEC [--build-token T]
//          [--api-token T] [--timeout-ms N] [--linger-ms N]
//
// It prints one JSON line per event the client yields,
//   {"kind":"event","t_ms":12,"data":{...the yielded object...}}
// and then one final line,
//   {"kind":"result","phases":[...],"final_phase":"ready","status_code":403,
//    "message":"...","token":"...","url":"...","requests_made":1,
//    "statuses":[200],"closed":true,"closed_by":"ui","events":7}
// status_code and message come from the first failed event (the server's,
// shown to the user), else message is the last event's.
// closed_by is "client" when the library ended its event stream itself
// (after a failed event or an unexpected close), "ui" when this script
// closed it after "ready" as BinderHub's UI does, and "timeout" when
// --timeout-ms passed first (closed is then false). After the end it waits
// --linger-ms (default 1500, longer than the client's 1 s retry interval)
// so requests_made shows whether the client would have retried.
// Exit code: 0 when a result was printed, 2 for bad arguments.

// The library is written for browsers: fetch-event-source uses
// window.fetch, window.setTimeout and document's visibility events. Node 20
// has fetch and timers on globalThis; document is a stub that is never hidden.
globalThis.window ??= globalThis;
globalThis.document ??= {
  hidden: false,
  cookie: "",
  addEventListener() {},
  removeEventListener() {},
};
// The library logs stream errors with console.log; keep stdout for JSON.
console.log = (...args) => console.error(...args);
// fetchEventSource's promise rejects when the library gives up (nobody
// awaits it, in the UI either); a browser logs that and goes on.
const rejections = [];
process.on("unhandledRejection", (err) => {
  rejections.push(String(err && err.name ? err.name : err));
  console.error("unhandled rejection (as a browser would log it):", err);
});

const { BinderRepository } = await import("@jupyterhub/binderhub-client/client.js");

function usage(msg) {
  process.stderr.write(`launch.mjs: ${msg}\nusage: node launch.mjs BASE_URL PROVIDER_SPEC [--build-token T] [--api-token T] [--timeout-ms N] [--linger-ms N]\n`);
  process.exit(2);
}

function parseArgs(argv) {
  const opts = { timeoutMs: 60000, lingerMs: 1500 };
  const pos = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const value = () => {
      if (i + 1 >= argv.length) usage(`${a} needs a value`);
      return argv[++i];
    };
    const number = () => {
      const n = Number(value());
      if (!Number.isFinite(n) || n < 0) usage(`${a} needs a non-negative number`);
      return n;
    };
    switch (a) {
      case "--build-token": opts.buildToken = value(); break;
      case "--api-token": opts.apiToken = value(); break;
      case "--timeout-ms": opts.timeoutMs = number(); break;
      case "--linger-ms": opts.lingerMs = number(); break;
      default:
        if (a.startsWith("--")) usage(`unknown flag ${a}`);
        pos.push(a);
    }
  }
  if (pos.length !== 2) usage("want BASE_URL and PROVIDER_SPEC");
  [opts.baseURL, opts.providerSpec] = pos;
  return opts;
}

const opts = parseArgs(process.argv.slice(2));
let base;
try {
  base = new URL(opts.baseURL);
} catch (e) {
  usage(`bad BASE_URL ${JSON.stringify(opts.baseURL)}: ${e.message}`);
}

// Count every HTTP request the client makes, and the statuses it gets.
let requestsMade = 0;
const statuses = [];
const realFetch = globalThis.fetch;
globalThis.fetch = async (...args) => {
  requestsMade++;
  const resp = await realFetch(...args);
  statuses.push(resp.status);
  return resp;
};

const start = Date.now();
const out = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

// As BinderHub's UI: the build endpoint is "build" under the base URL.
if (!base.pathname.endsWith("/")) base.pathname += "/";
const buildEndpointUrl = new URL("build", base);
const image = new BinderRepository(opts.providerSpec, buildEndpointUrl, {
  buildToken: opts.buildToken,
  apiToken: opts.apiToken,
});

const result = { kind: "result", phases: [], final_phase: "", message: "", events: 0 };
let closedBy = "";
let sawFailed = false;
let timer;
const timedOut = new Promise((resolve) => {
  timer = setTimeout(() => resolve("timeout"), opts.timeoutMs);
});

async function consume() {
  for await (const data of image.fetch()) {
    result.events++;
    out({ kind: "event", t_ms: Date.now() - start, data });
    const phase = data.phase || "";
    if (phase && !result.phases.includes(phase)) result.phases.push(phase);
    result.final_phase = phase;
    if (phase === "failed" && !sawFailed) {
      // The first failed event is the one the server sent (the library
      // may add its own "Error in event stream" after it): its message is
      // what the user is shown.
      sawFailed = true;
      result.message = data.message || "";
      if (data.status_code !== undefined) result.status_code = data.status_code;
    } else if (!sawFailed) {
      result.message = data.message || "";
    }
    // Unlike the UI, do not close on failed: the point is to see whether
    // the library stops (or retries) on its own.
    if (phase === "ready") {
      result.token = data.token;
      result.url = data.url;
      // As the UI: close the stream once the server is ready.
      closedBy = "ui";
      image.close();
      break;
    }
  }
  if (!closedBy) closedBy = "client";
  return closedBy;
}

const how = await Promise.race([
  consume().catch((err) => {
    // Not expected from the library; report it rather than crash.
    result.error = String(err);
    return "client";
  }),
  timedOut,
]);
clearTimeout(timer);
if (how === "timeout") {
  closedBy = "timeout";
  image.close();
}
// Linger: a client that retries would make more requests now.
await sleep(opts.lingerMs);
result.requests_made = requestsMade;
result.statuses = statuses;
result.closed = closedBy !== "timeout";
result.closed_by = closedBy;
result.t_ms = Date.now() - start;
if (rejections.length) result.rejections = rejections;
out(result);
process.exit(0);
