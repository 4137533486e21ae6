// Signs inbound webhooks with the senders' own libraries and delivers them to hookgate's
// WEBHOOK sources: Standard Webhooks (`standardwebhooks`), GitHub (`@octokit/webhooks-methods`),
// Stripe (`stripe`, its test-header helper) and a generic HMAC-SHA256 sender (Node's crypto).
// Each signed message fires once, a redelivery fires nothing and answers 200 again, and a
// tampered one is refused with 401 and listed among the source's rejections.
// Usage: HOOKGATE_URL=... HOOKGATE_CLIENT_ID=... HOOKGATE_CLIENT_SECRET=... node inbound_webhooks.mjs
import { createHmac, randomBytes, randomUUID } from "node:crypto";
import Stripe from "stripe";
import { sign as signGithub } from "@octokit/webhooks-methods";
import { Webhook } from "standardwebhooks";

const BASE = process.env.HOOKGATE_URL.replace(/\/$/, "");
const run = randomBytes(4).toString("hex");
let failures = 0;

function check(ok, what) {
  console.log(`${ok ? "ok  " : "FAIL"} ${what}`);
  if (!ok) failures += 1;
}

async function token() {
  const form = new URLSearchParams({
    grant_type: "client_credentials",
    client_id: process.env.HOOKGATE_CLIENT_ID,
    client_secret: process.env.HOOKGATE_CLIENT_SECRET,
  });
  const response = await fetch(`${BASE}/oauth/token`, { method: "POST", body: form });
  return (await response.json()).access_token;
}

async function api(bearer, method, path, body) {
  const response = await fetch(`${BASE}${path}`, {
    method,
    headers: { Authorization: `Bearer ${bearer}`, "Content-Type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

async function deliver(url, body, headers) {
  const response = await fetch(url, { method: "POST", headers: { "Content-Type": "application/json", ...headers }, body });
  const text = await response.text();
  return { status: response.status, body: text ? JSON.parse(text) : null };
}

/// Creates a source, delivers `signed` twice and `forged` once, and checks what happened.
async function scenario(bearer, name, webhookConfig, extra, message) {
  const id = `contract-${name}-${run}`;
  const created = await api(bearer, "POST", "/sources/v1", {
    id, name, type: "WEBHOOK", triggerId: "test:fire-and-forget", webhookConfig, ...extra,
  });
  check(created.status === 201, `${name}: source created (${created.status})`);
  const { body, headers, forgedHeaders } = await message();
  const first = await deliver(created.body.url, body, headers);
  check(first.status === 202 && typeof first.body.eventId === "string", `${name}: a signed message fires an event (${first.status})`);
  const again = await deliver(created.body.url, body, headers);
  check(again.status === 200 && again.body.eventId === first.body.eventId, `${name}: a redelivery fires nothing and answers 200 (${again.status})`);
  const forged = await deliver(created.body.url, body.replace("u-1", "u-2"), forgedHeaders ?? headers);
  check(forged.status === 401, `${name}: a tampered message is refused with 401 (${forged.status})`);
  const read = await api(bearer, "GET", `/sources/v1/${id}`);
  const status = read.body.status;
  check(status.fired === 1 && status.rejected === 1 && status.received === 3, `${name}: status ${JSON.stringify(status)}`);
  const rejections = await api(bearer, "GET", `/sources/v1/${id}/rejections`);
  check(rejections.body[0]?.reason === "BAD_SIGNATURE", `${name}: the refusal is listed as BAD_SIGNATURE`);
  await api(bearer, "DELETE", `/sources/v1/${id}`);
}

const bearer = await token();

const standardSecret = `whsec_${randomBytes(32).toString("base64")}`;
await scenario(bearer, "standard", { verification: "STANDARD_WEBHOOKS", secret: standardSecret }, {}, async () => {
  const body = JSON.stringify({ identityId: "u-1", kind: "standard" });
  const msgId = `msg_${randomUUID()}`;
  const at = new Date();
  const headers = {
    "webhook-id": msgId,
    "webhook-timestamp": String(Math.floor(at.getTime() / 1000)),
    "webhook-signature": new Webhook(standardSecret).sign(msgId, at, body),
  };
  return { body, headers };
});

const githubSecret = randomBytes(20).toString("hex");
await scenario(bearer, "github", { verification: "GITHUB", secret: githubSecret }, {}, async () => {
  const body = JSON.stringify({ action: "opened", identityId: "u-1" });
  const headers = {
    "X-GitHub-Event": "issues",
    "X-GitHub-Delivery": randomUUID(),
    "X-Hub-Signature-256": await signGithub(githubSecret, body),
  };
  return { body, headers };
});

const stripeSecret = `whsec_${randomBytes(24).toString("hex")}`;
const stripe = new Stripe("sk_test_contract");
await scenario(bearer, "stripe", { verification: "STRIPE", secret: stripeSecret }, { inputPath: "$.data.object" }, async () => {
  const body = JSON.stringify({ id: `evt_${run}`, type: "charge.succeeded", data: { object: { identityId: "u-1" } } });
  const headers = { "Stripe-Signature": stripe.webhooks.generateTestHeaderString({ payload: body, secret: stripeSecret }) };
  return { body, headers };
});

const hmacSecret = randomBytes(16).toString("hex");
await scenario(bearer, "hmac", { verification: "HMAC_SHA256", secret: hmacSecret, header: "X-Signature" }, {}, async () => {
  const body = JSON.stringify({ identityId: "u-1" });
  const signature = createHmac("sha256", hmacSecret).update(body).digest("hex");
  // A generic sender has no delivery id of its own: it sends an Idempotency-Key.
  return { body, headers: { "X-Signature": `sha256=${signature}`, "Idempotency-Key": randomUUID() } };
});

process.exit(failures === 0 ? 0 : 1);
