// The Vouch explorer: one page, hash routes, the node's own JSON API. Every value shown comes from an API answer;
// text goes into the page as text nodes (never as HTML), so nothing a model name or a transaction carries can run.
"use strict";

const main = document.getElementById("main");
const POLL_MS = 1000;
const CHART_POINTS = 60;
const ACCOUNT_SCAN_BLOCKS = 200;
let timers = [];
let generation = 0;

// ---- helpers ------------------------------------------------------------------------------------------------------

/** An element: h("a", {href: "#/"}, "text", child, ...). Strings become text nodes. */
function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k === "class") el.className = v;
    else if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
  return el;
}

class ApiError extends Error {
  constructor(status, code, message) {
    super(message);
    this.status = status;
    this.code = code;
  }
}

async function api(path, options) {
  const r = await fetch(path, options);
  let body = null;
  try {
    body = await r.json();
  } catch (_) {
    body = null;
  }
  if (!r.ok) {
    const e = body && body.error ? body.error : {};
    throw new ApiError(r.status, e.code || "http_error", e.message || `HTTP ${r.status}`);
  }
  return body;
}

/** The answer, or null when the node says there is no such thing (404). */
async function maybe(path) {
  try {
    return await api(path);
  } catch (e) {
    if (e instanceof ApiError && e.status === 404) return null;
    throw e;
  }
}

const short = (hex, n = 10) => (hex && hex.length > 2 * n ? `${hex.slice(0, n)}…${hex.slice(-4)}` : hex || "");
const link = (href, text, attrs) => h("a", { href, ...(attrs || {}) }, text);
const blockLink = (height) => link(`#/block/${height}`, String(height));
const accountLink = (a) => link(`#/account/${a}`, short(a), { title: a, class: "mono" });
const txLink = (id) => link(`#/tx/${id}`, short(id), { title: id, class: "mono" });
const nodeLink = (id) => link(`#/node/${id}`, short(id), { title: id, class: "mono" });
const modelLink = (ref, text) => link(`#/model/${encodeURIComponent(ref)}`, text || ref, { class: "mono" });

function age(ms) {
  const s = Math.max(0, (Date.now() - ms) / 1000);
  if (s < 60) return `${s.toFixed(1)} s ago`;
  if (s < 3600) return `${Math.floor(s / 60)} min ago`;
  return `${Math.floor(s / 3600)} h ago`;
}

function bytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1 << 20) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1 << 30) return `${(n / (1 << 20)).toFixed(1)} MiB`;
  return `${(n / (1 << 30)).toFixed(2)} GiB`;
}

/** A definition list of [label, value] rows; values may be elements. */
function fields(rows) {
  return h(
    "dl",
    { class: "fields" },
    rows.filter((r) => r).map(([k, v, id]) => [h("dt", {}, k), h("dd", id ? { "data-field": id } : {}, v ?? "—")]),
  );
}

function table(headers, rows, attrs) {
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      attrs || {},
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows.map((r) => h("tr", {}, r.map((c) => h("td", {}, c))))),
    ),
  );
}

function card(label, value, id) {
  return h("div", { class: "card" }, h("div", { class: "label" }, label), h("div", { class: "value", id }, value));
}

/** A small line chart of numbers (SVG built as elements, no HTML strings). */
function chart(label, values, unit, id) {
  const W = 320, H = 64, P = 4;
  const ns = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(ns, "svg");
  svg.setAttribute("viewBox", `0 0 ${W} ${H}`);
  svg.setAttribute("preserveAspectRatio", "none");
  svg.setAttribute("role", "img");
  const last = values.length ? values[values.length - 1] : null;
  svg.setAttribute("aria-label", `${label}: ${last === null ? "no data yet" : `${last.toFixed(2)} ${unit} latest`}`);
  if (values.length > 1) {
    const max = Math.max(...values, 1e-9);
    const pts = values.map((v, i) => {
      const x = P + (i * (W - 2 * P)) / (values.length - 1);
      const y = H - P - (v / max) * (H - 2 * P);
      return `${x.toFixed(1)},${y.toFixed(1)}`;
    });
    const line = document.createElementNS(ns, "polyline");
    line.setAttribute("points", pts.join(" "));
    line.setAttribute("class", "line");
    line.setAttribute("vector-effect", "non-scaling-stroke");
    svg.append(line);
  }
  return h(
    "figure",
    { class: "chart", id },
    h("figcaption", {}, label, " ", h("strong", {}, last === null ? "—" : `${last.toFixed(2)} ${unit}`)),
    svg,
  );
}

function message(title, text) {
  return h("section", { class: "message", role: "alert" }, h("h1", {}, title), h("p", {}, text));
}

function page(title, ...content) {
  const parts = content.flat(Infinity).filter((c) => c !== undefined && c !== null && c !== false && c !== "");
  main.replaceChildren(h("h1", {}, title), ...parts);
  document.title = `${title} · Vouch explorer`;
}

function every(ms, f) {
  timers.push(setInterval(f, ms));
}

// ---- transactions -------------------------------------------------------------------------------------------------

/** A transaction's action in one line. */
function describe(action) {
  if (!action) return "";
  const parts = [];
  for (const [k, v] of Object.entries(action)) {
    if (k === "kind") continue;
    if (typeof v === "string" && /^[0-9a-f]{64}$/.test(v)) parts.push(`${k} ${short(v, 8)}`);
    else if (typeof v === "object" && v !== null) parts.push(`${k} ${JSON.stringify(v)}`);
    else parts.push(`${k} ${v}`);
  }
  return parts.join(", ");
}

function resultCell(result) {
  if (!result) return h("span", { class: "muted" }, "pending");
  return result.ok ? h("span", { class: "ok" }, "ok") : h("span", { class: "bad", title: result.error }, "failed");
}

function txRows(txs) {
  return txs.map((t) =>
    t.epoch_change
      ? [h("span", { class: "muted" }, "epoch change"), "", "", `epoch ${t.epoch_change.epoch}`, ""]
      : t.malformed
        ? [h("span", { class: "bad" }, "malformed"), "", "", t.malformed, ""]
        : [txLink(t.id), accountLink(t.from), t.kind, describe(t.action), resultCell(t.result)],
  );
}

// ---- views --------------------------------------------------------------------------------------------------------

async function overview(gen) {
  const [status, nodes] = await Promise.all([api("/v1/ledger/status"), api("/v1/ledger/nodes")]);
  const first = Math.max(1, status.height - CHART_POINTS);
  const heights = [];
  for (let i = status.height; i >= first; i--) heights.push(i);
  const blocks = (await Promise.all(heights.map((i) => maybe(`/v1/ledger/blocks/${i}`)))).filter((b) => b).reverse();
  if (gen !== generation) return;
  const series = { interval: [], receipts: [] };
  const settledIn = (b) =>
    b.txs.reduce((n, t) => n + (t.kind === "settle_batch" ? t.action.count : t.kind === "settle_receipt" ? 1 : 0), 0);
  let prev = null;
  const recent = [];
  const addBlock = (b) => {
    if (prev) {
      const dt = Math.max(1, b.timestamp_ms - prev.timestamp_ms) / 1000;
      series.interval.push(dt);
      series.receipts.push(settledIn(b) / dt);
      for (const s of Object.values(series)) if (s.length > CHART_POINTS) s.shift();
    }
    prev = b;
    recent.unshift(b);
    if (recent.length > 8) recent.pop();
  };
  blocks.forEach(addBlock);

  const charts = h("div", { class: "charts" });
  const latest = h("div", {});
  const drawCharts = () =>
    charts.replaceChildren(
      chart("Time between finalized blocks", series.interval, "s", "chart-finality"),
      chart("Receipts settled per second", series.receipts, "/s", "chart-receipts"),
    );
  const drawLatest = () =>
    latest.replaceChildren(
      table(
        ["Height", "Hash", "Time", "Transactions"],
        recent.map((b) => [blockLink(b.height), h("span", { class: "mono" }, short(b.hash)), age(b.timestamp_ms), b.txs.length]),
        { id: "latest-blocks" },
      ),
    );
  const cards = h(
    "div",
    { class: "cards" },
    card("Height", String(status.height), "height"),
    card("Last block", age(status.last_block_time_ms), "last-block-age"),
    card("Finalized transactions", String(status.finalized_txs), "finalized-txs"),
    card("Settled receipts", String(status.settled_receipts), "settled-receipts"),
    card("Mempool", String(status.mempool), "mempool"),
    card("Validators", String(status.validators.length), "validator-count"),
  );
  drawCharts();
  drawLatest();
  page(
    "Network",
    h("p", { class: "muted" }, "Chain ", h("span", { class: "mono", id: "chain-id" }, status.chain_id), " · live, every second"),
    cards,
    charts,
    h("h2", {}, "Validators"),
    table(
      ["Node", "API", "Consensus key", "P2P"],
      status.validators.map((v) => [nodeLink(v.node_id), link(v.api + "/explorer/", v.api), h("span", { class: "mono" }, short(v.consensus_key)), v.p2p]),
      { id: "validators" },
    ),
    h("h2", {}, "Latest blocks ", link("#/blocks", "all")),
    latest,
    h("p", { class: "muted" }, `${nodes.length} executor nodes registered · `, link("#/nodes", "nodes")),
  );
  let shown = status;
  every(POLL_MS, async () => {
    const s = await api("/v1/ledger/status");
    if (gen !== generation) return;
    for (const [id, v] of [
      ["height", s.height],
      ["finalized-txs", s.finalized_txs],
      ["settled-receipts", s.settled_receipts],
      ["mempool", s.mempool],
    ]) {
      const el = document.getElementById(id);
      if (el) el.textContent = String(v);
    }
    const el = document.getElementById("last-block-age");
    if (el) el.textContent = age(s.last_block_time_ms);
    for (let i = shown.height + 1; i <= s.height; i++) {
      const b = await maybe(`/v1/ledger/blocks/${i}`);
      if (b && gen === generation) addBlock(b);
    }
    if (s.height !== shown.height) {
      drawCharts();
      drawLatest();
    }
    shown = s;
  });
}

async function blocks(gen, top) {
  const status = await api("/v1/ledger/status");
  const upTo = Math.min(status.height, top ?? status.height);
  const heights = [];
  for (let i = upTo; i >= Math.max(0, upTo - 24); i--) heights.push(i);
  const list = (await Promise.all(heights.map((i) => maybe(`/v1/ledger/blocks/${i}`)))).filter((b) => b);
  if (gen !== generation) return;
  const older = upTo - 25;
  page(
    "Blocks",
    table(
      ["Height", "Hash", "Time", "Transactions", "State root"],
      list.map((b) => [blockLink(b.height), h("span", { class: "mono" }, short(b.hash)), age(b.timestamp_ms), b.txs.length, h("span", { class: "mono" }, short(b.state_root || ""))]),
      { id: "blocks" },
    ),
    h("p", {}, older >= 0 ? link(`#/blocks/${older}`, "Older blocks") : "", " ", upTo < status.height ? link("#/blocks", "Newest") : ""),
  );
}

async function block(gen, height) {
  if (!/^\d+$/.test(height)) return page("Block", message("Not a block height", `“${height}” is not a number.`));
  const b = await maybe(`/v1/ledger/blocks/${height}`);
  if (gen !== generation) return;
  if (!b) return page("Block", message("Unknown block", `This node has no finalized block at height ${height}.`));
  page(
    `Block ${b.height}`,
    fields([
      ["Hash", h("span", { class: "mono" }, b.hash), "hash"],
      ["Parent", h("span", { class: "mono" }, b.parent)],
      ["Time", `${new Date(b.timestamp_ms).toISOString()} (${age(b.timestamp_ms)})`],
      ["Transaction root", h("span", { class: "mono" }, b.tx_root)],
      ["State root", h("span", { class: "mono" }, b.state_root || "—")],
      ["Neighbours", [b.height > 0 ? link(`#/block/${b.height - 1}`, "previous") : "", " ", link(`#/block/${b.height + 1}`, "next")]],
    ]),
    h("h2", {}, `Transactions (${b.txs.length})`),
    table(["Transaction", "From", "Action", "Details", "Result"], txRows(b.txs), { id: "block-txs" }),
  );
}

async function tx(gen, id) {
  const t = await maybe(`/v1/ledger/txs/${encodeURIComponent(id)}`).catch((e) => {
    if (e.code === "invalid_id") return null;
    throw e;
  });
  if (gen !== generation) return;
  if (!t) return page("Transaction", message("Unknown transaction", `No finalized transaction ${id} on this node.`));
  const r = t.result || {};
  page(
    "Transaction",
    fields([
      ["Id", h("span", { class: "mono" }, t.id)],
      ["Action", t.kind, "kind"],
      ["Details", describe(t.action)],
      ["From", t.from ? accountLink(t.from) : "—"],
      ["Nonce", t.nonce],
      ["Fee", t.fee],
      ["Block", [blockLink(t.height), ` (index ${t.index})`], "height"],
      ["Result", r.ok ? h("span", { class: "ok" }, "ok") : h("span", { class: "bad" }, `failed: ${r.error}`), "result"],
    ]),
    h("h2", {}, "Events"),
    r.events && r.events.length ? h("ul", { class: "events" }, r.events.map((e) => h("li", { class: "mono" }, e))) : h("p", { class: "muted" }, "None."),
  );
}

function tensorPreview(t) {
  const data = Array.isArray(t.data) ? t.data : [];
  const head = data.slice(0, 8).map((v) => (typeof v === "number" ? +v.toPrecision(6) : v));
  return `${t.dtype} [${(t.shape || []).join(", ")}] ${JSON.stringify(head)}${data.length > 8 ? ` … (${data.length} values)` : ""}`;
}

async function receipt(gen, id) {
  let r;
  try {
    r = await maybe(`/v1/receipts/${encodeURIComponent(id)}`);
  } catch (e) {
    if (e.code !== "invalid_id") throw e;
  }
  if (gen !== generation) return;
  if (!r) return page("Receipt", message("Unknown receipt", `This node has no receipt ${id} (a receipt is served by the node that issued it).`));
  const checks = h("ul", { class: "checks", id: "checks" }, h("li", { class: "muted" }, "Verifying…"));
  const a = r.anchor;
  const origin = location.origin;
  page(
    "Receipt",
    fields([
      ["Id", h("span", { class: "mono" }, r.id), "id"],
      ["Model", modelLink(r.model), "model"],
      ["Mode", r.mode, "mode"],
      ["Engine", r.engine],
      ["Issued", new Date(r.issued_at_ms).toISOString()],
      ["Executors", h("span", { "data-field": "executors" }, r.executors.map((e, i) => [i ? ", " : "", nodeLink(e)]))],
      ["Evidence", r.evidence.map((e) => e.kind).join(", "), "evidence"],
      [
        "Anchor",
        a
          ? [`height `, blockLink(a.height), a.batch ? ` · leaf ${a.batch.index} of a batch` : "", " · block ", h("span", { class: "mono" }, short(a.block_hash))]
          : h("span", { class: "muted" }, "not settled yet"),
        "anchor",
      ],
    ]),
    h("h2", {}, "Inputs"),
    r.inputs
      ? h("ul", { class: "tensors" }, Object.entries(r.inputs).map(([k, t]) => h("li", {}, h("strong", {}, k), " ", h("span", { class: "mono" }, tensorPreview(t)))))
      : h("p", { class: "muted" }, "Private: the receipt commits to the input without disclosing it."),
    h("h2", {}, "Outputs"),
    h("ul", { class: "tensors" }, Object.entries(r.outputs).map(([k, t]) => h("li", {}, h("strong", {}, k), " ", h("span", { class: "mono" }, tensorPreview(t))))),
    h("h2", {}, "This node's verification"),
    checks,
    h("h2", {}, "Check it yourself"),
    h(
      "pre",
      { class: "command", id: "verify-command" },
      `curl -s ${origin}/v1/receipts/${r.id} > receipt.json\n` +
        `curl -s ${origin}/v1/ledger/genesis > genesis.json\n` +
        `vouch verify receipt.json${a ? " --genesis genesis.json" : ""}`,
    ),
  );
  try {
    const v = await api("/v1/verify", { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(r) });
    if (gen !== generation) return;
    const items = (v.checks && v.checks.length ? v.checks : [{ check: "receipt", ok: v.valid, detail: v.reason || "valid" }]).map((c) =>
      h("li", { class: c.ok ? "ok" : "bad" }, h("span", { "aria-hidden": "true" }, c.ok ? "✓ " : "✗ "), h("strong", {}, c.check), " ", c.detail),
    );
    checks.replaceChildren(...items);
  } catch (e) {
    checks.replaceChildren(h("li", { class: "bad" }, `The node could not verify it: ${e.message}`));
  }
}

async function models(gen) {
  const list = await api("/v1/models");
  if (gen !== generation) return;
  const repos = list.repos || [];
  page(
    "Models",
    repos.length
      ? table(
          ["Repository", "Owner", "Versions", "Latest", "Size", "Format", "zk"],
          repos.map((r) => {
            const v = r.versions[r.versions.length - 1];
            return [modelLink(r.name), r.owner ? accountLink(r.owner) : "—", r.versions.length, modelLink(`${r.name}@${v.version}`, v.version), bytes(v.size), v.format, v.zk ? "yes" : ""];
          }),
          { id: "models" },
        )
      : h("p", { class: "muted" }, "No models on this node yet."),
  );
}

async function model(gen, ref) {
  let v;
  try {
    v = await maybe(`/v1/models/${encodeURIComponent(ref)}`);
  } catch (e) {
    if (e.status !== 400) throw e;
  }
  if (gen !== generation) return;
  if (!v) return page("Model", message("Unknown model", `No model ${ref} on this node.`));
  const list = await api("/v1/models");
  const repo = (list.repos || []).find((r) => r.name === v.name);
  const z = v.zk;
  const l = v.llm;
  page(
    `${v.name}@${v.version}`,
    fields([
      ["Id", h("span", { class: "mono" }, v.id), "id"],
      ["Size", `${bytes(v.size)} (${v.size} bytes)`, "size"],
      ["Format", v.format],
      ["Description", v.description || "—"],
      ["Owner", v.owner ? [accountLink(v.owner), " (its signature on the push was checked: name, version and id)"] : "unsigned push (the node's own)", "owner"],
      ["Created", new Date(v.created_at_ms).toISOString()],
      ["Producer", v.producer || "—"],
      ["Inputs", (v.inputs || []).map((i) => `${i.name}: ${i.dtype} [${(i.shape || []).join(", ")}]`).join("; ")],
      ["Outputs", (v.outputs || []).map((o) => `${o.name}: ${o.dtype} [${(o.shape || []).join(", ")}]`).join("; ")],
      ["Operators", Object.entries(v.ops || {}).map(([k, n]) => `${k}×${n}`).join(" ")],
      ["Quorum agreement", v.agreement && v.agreement.kind === "tolerance" ? `within ${v.agreement.abs} + ${v.agreement.rel}·|reference|` : "exact"],
    ]),
    z
      ? [
          h("h2", {}, "Zero-knowledge"),
          fields([
            ["Commitment", h("span", { class: "mono" }, z.commitment || "none"), "zk-commitment"],
            ["Weights", z.hidden_weights ? `int${z.weight_bits}, private: the file is not served; proofs bind them by the commitment below` : `int${z.weight_bits}`],
            ["Argmax agreement", `${(z.argmax_agreement * 100).toFixed(2)}% on ${z.samples} calibration inputs`],
            ["Error", `max ${Number(z.max_abs_error).toExponential(3)}, mean ${Number(z.mean_abs_error).toExponential(3)}`],
            ["Private inputs", z.hidden_weights ? "required" : z.private_commitment ? "supported" : z.private_unsupported || "—"],
            ...(z.hidden_weights ? [["Weights commitment", h("span", { class: "mono" }, z.weights_commitment || "none")]] : []),
          ]),
        ]
      : "",
    l
      ? [
          h("h2", {}, "Language model"),
          fields([
            ["Architecture", `${l.architecture} (${l.model_name || "unnamed"})`],
            ["Parameters", `${(l.parameters / 1e6).toFixed(1)}M`],
            ["Context", `${l.context_length} tokens`],
            ["Tokenizer", `${l.tokenizer}, ${l.vocab_size} tokens`],
            ["Chat template", l.chat_template ? `in the file (${l.chat_template.length} bytes)` : "the architecture's"],
          ]),
        ]
      : "",
    repo ? [h("h2", {}, "Versions"), table(["Version", "Id", "Size"], repo.versions.map((x) => [modelLink(`${repo.name}@${x.version}`, x.version), h("span", { class: "mono" }, short(x.id, 14)), bytes(x.size)]))] : "",
  );
}

function nodeRow(n) {
  const at = n.attestation;
  return [
    nodeLink(n.node),
    accountLink(n.operator),
    link(n.endpoint + "/explorer/", n.endpoint),
    n.stake,
    n.unbonding.length ? n.unbonding.map((u) => `${u.amount} at ${u.release_height}`).join(", ") : "—",
    n.slashed,
    at ? `${at.platform} ${short(at.measurement, 6)} ${at.valid ? "valid" : "expired"}` : "—",
  ];
}

const NODE_HEADERS = ["Node", "Operator", "Endpoint", "Stake", "Unbonding", "Slashed", "Attestation"];

async function nodes(gen) {
  const list = await api("/v1/ledger/nodes");
  if (gen !== generation) return;
  page("Nodes", table(NODE_HEADERS, list.map(nodeRow), { id: "nodes" }));
}

async function node(gen, id) {
  const list = await api("/v1/ledger/nodes");
  if (gen !== generation) return;
  const n = list.find((x) => x.node === id);
  if (!n) return page("Node", message("Unknown node", `No executor node ${id} is registered on this ledger.`));
  page(
    "Node",
    fields(NODE_HEADERS.map((k, i) => [k, nodeRow(n)[i]])),
    fields([["Engine", n.engine], n.attestation ? ["Attestation", JSON.stringify({ ...n.attestation, evidence: short(n.attestation.evidence) })] : null]),
  );
}

async function account(gen, address) {
  if (!/^[0-9a-f]{64}$/.test(address)) return page("Account", message("Not an address", `“${address}” is not 64 hex characters.`));
  const a = await api(`/v1/ledger/accounts/${address}`);
  if (gen !== generation) return;
  const txs = h("div", { id: "account-txs" }, h("p", { class: "muted" }, "Scanning recent blocks…"));
  page(
    "Account",
    fields([
      ["Address", h("span", { class: "mono" }, a.address)],
      ["Balance", String(a.balance), "balance"],
      ["Nonce", String(a.nonce), "nonce"],
      ["Next nonce", String(a.next_nonce)],
    ]),
    h("h2", {}, `Transactions in the last ${ACCOUNT_SCAN_BLOCKS} blocks`),
    txs,
  );
  const heights = [];
  for (let i = a.height; i >= Math.max(1, a.height - ACCOUNT_SCAN_BLOCKS + 1); i--) heights.push(i);
  const found = [];
  for (let i = 0; i < heights.length; i += 20) {
    const bs = await Promise.all(heights.slice(i, i + 20).map((x) => maybe(`/v1/ledger/blocks/${x}`)));
    if (gen !== generation) return;
    for (const b of bs.filter((x) => x)) {
      for (const t of b.txs) {
        const to = t.action && (t.action.to || t.action.node);
        if (t.from === address || to === address) found.push([blockLink(b.height), ...txRows([t])[0]]);
      }
    }
  }
  txs.replaceChildren(
    found.length
      ? table(["Block", "Transaction", "From", "Action", "Details", "Result"], found)
      : h("p", { class: "muted" }, "None in these blocks."),
  );
}

/** A search: a height, a receipt, a transaction, a node, an account, a model id or name, in that order. */
async function search(gen, q) {
  q = q.trim();
  const go = (hash) => {
    if (gen === generation) location.replace(hash);
  };
  if (/^\d+$/.test(q)) return go(`#/block/${q}`);
  if (/^[0-9a-fA-F]{64}$/.test(q)) {
    const id = q.toLowerCase();
    if (await maybe(`/v1/receipts/${id}`)) return go(`#/receipt/${id}`);
    if (await maybe(`/v1/ledger/txs/${id}`)) return go(`#/tx/${id}`);
    const ns = await api("/v1/ledger/nodes");
    if (ns.some((n) => n.node === id)) return go(`#/node/${id}`);
    const a = await api(`/v1/ledger/accounts/${id}`);
    if (a.balance > 0 || a.nonce > 0 || ns.some((n) => n.operator === id)) return go(`#/account/${id}`);
  } else if (q && (await maybe(`/v1/models/${encodeURIComponent(q)}`).catch(() => null))) {
    return go(`#/model/${encodeURIComponent(q)}`);
  }
  if (gen !== generation) return;
  page("Search", message("Nothing found", `No block, receipt, transaction, node, account or model matches “${q}”.`));
}

// ---- routing ------------------------------------------------------------------------------------------------------

const ROUTES = [
  [/^$/, overview],
  [/^blocks(?:\/(\d+))?$/, (g, top) => blocks(g, top === undefined ? undefined : Number(top))],
  [/^block\/(.+)$/, block],
  [/^tx\/(.+)$/, tx],
  [/^receipt\/(.+)$/, receipt],
  [/^models$/, models],
  [/^model\/(.+)$/, (g, r) => model(g, decodeURIComponent(r))],
  [/^nodes$/, nodes],
  [/^node\/(.+)$/, node],
  [/^account\/(.+)$/, account],
  [/^search\/(.*)$/, (g, q) => search(g, decodeURIComponent(q))],
];

async function render() {
  generation += 1;
  const gen = generation;
  timers.forEach(clearInterval);
  timers = [];
  const path = location.hash.replace(/^#\/?/, "");
  for (const a of document.querySelectorAll("nav a")) {
    const target = a.getAttribute("href").replace(/^#\/?/, "");
    if (target === path.split("/")[0] || (target === "" && path === "")) a.setAttribute("aria-current", "page");
    else a.removeAttribute("aria-current");
  }
  for (const [re, view] of ROUTES) {
    const m = path.match(re);
    if (!m) continue;
    try {
      await view(gen, ...m.slice(1));
    } catch (e) {
      if (gen === generation) page("Error", message("The node did not answer", e.message || String(e)));
    }
    return;
  }
  page("Not found", message("No such page", `The explorer has no page “${path}”.`));
}

document.getElementById("search").addEventListener("submit", (ev) => {
  ev.preventDefault();
  const q = document.getElementById("q").value.trim();
  if (q) location.hash = `#/search/${encodeURIComponent(q)}`;
});
document.addEventListener("keydown", (ev) => {
  const typing = ev.target instanceof HTMLInputElement || ev.target instanceof HTMLTextAreaElement;
  if (ev.key === "/" && !typing) {
    ev.preventDefault();
    const q = document.getElementById("q");
    q.focus();
    q.select();
  }
});
window.addEventListener("hashchange", () => {
  render();
  main.focus({ preventScroll: true });
});
api("/v1/node")
  .then((n) => {
    document.getElementById("node-line").textContent = `Served by node ${short(n.node_id)} · vouch ${n.version || ""}`;
  })
  .catch(() => {});
render();
