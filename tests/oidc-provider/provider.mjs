// A real OpenID Connect provider (the certified oidc-provider package) on 127.0.0.1, for the key server's tests.
//
//   node provider.mjs --state DIR [--port N] [--accounts FILE] [--exit-on-stdin-close]
//
// (or the variables OIDC_STATE, OIDC_PORT, OIDC_ACCOUNTS). Port 0 or none: any free port. Prints one line
// `ready http://127.0.0.1:PORT` on stdout once it listens; that URL is the issuer, its discovery document is at
// /.well-known/openid-configuration. Exits 0 on SIGTERM or SIGINT, and with --exit-on-stdin-close when its standard
// input closes (so a test process that dies takes the provider with it). Anything wrong at start: a message on stderr
// and exit 1.
//
// Signing keys: DIR/jwks.json, a JWKS with private keys. Created on the first start with one EC P-256 key (ES256) and
// one RSA key (RS256), each with a kid. Every token is signed with the FIRST key of its algorithm in that file, so a
// rotation writes the new keys first and keeps the old ones after them, then restarts the provider on the same port.
//
// Clients (public, no secret, authorization code with PKCE S256 only, redirect URI http://127.0.0.1/callback, any
// port as RFC 8252 allows for loopback redirects):
//   modelseal-app      ID tokens signed ES256
//   modelseal-app-rs   ID tokens signed RS256
//
// Accounts: a JSON file (default accounts.json beside this script: alice, bob, carol) mapping each login to its claims,
// each with a string sub. An access token carries all of the account's claims as they are (any name, any JSON type);
// an ID token (scope openid; aud = the client id, no typ header) carries sub, groups, plan and tenant, and with scope
// email also email and email_verified.
//
// Resources (resource indicators, RFC 8707): access tokens are JWTs (RFC 9068, typ at+jwt) with the granted scopes
// among the resource's. Each variant of the key server's resource differs from it in one thing only:
//   resource                  aud                  alg    lifetime  scopes
//   urn:modelseal:keys        urn:modelseal:keys   ES256  300 s     keys models admin
//   urn:modelseal:keys-rs     urn:modelseal:keys   RS256  300 s     keys models admin  (an algorithm a server may not list)
//   urn:modelseal:keys-long   urn:modelseal:keys   ES256  2 days    keys models admin  (longer than a MaxLifetime)
//   urn:other:api             urn:other:api        ES256  300 s     keys models        (another audience)
//
// Sign-in over plain HTTP, no browser: /auth redirects to /interaction/UID (GET: the prompt, as JSON when the
// request accepts application/json, else a small HTML form); POST /interaction/UID/login with the form field
// `login` (a key of the accounts file; unknown: the flow ends with error=access_denied at the redirect URI);
// then POST /interaction/UID/confirm grants the requested scopes and resource; each POST answers 303 back to /auth.

import * as crypto from 'node:crypto';
import * as fs from 'node:fs';
import * as http from 'node:http';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const here = path.dirname(fileURLToPath(import.meta.url));

function fail(message) {
  process.stderr.write(`provider.mjs: ${message}\n`);
  process.exit(1);
}

const [nodeMajor] = process.versions.node.split('.').map(Number);
if (nodeMajor < 20) fail(`needs Node.js 20 or later, this is ${process.version}`);
// Imported once the version is known to be enough (a static import would run first).
const { default: Provider, errors } = await import('oidc-provider');

let options;
try {
  ({ values: options } = parseArgs({
    options: {
      port: { type: 'string', default: process.env.OIDC_PORT ?? '0' },
      state: { type: 'string', default: process.env.OIDC_STATE },
      accounts: { type: 'string', default: process.env.OIDC_ACCOUNTS ?? path.join(here, 'accounts.json') },
      'exit-on-stdin-close': { type: 'boolean', default: false },
    },
    strict: true,
  }));
} catch (error) {
  fail(error.message);
}

const port = Number(options.port);
if (!Number.isInteger(port) || port < 0 || port > 65535) fail(`--port must be 0 to 65535, not '${options.port}'`);
if (!options.state) fail('--state DIR (or OIDC_STATE) is required: the directory that holds jwks.json');

// ---- signing keys -----------------------------------------------------------------------------------------------

function newKey(type) {
  const kid = `${type === 'ec' ? 'ec' : 'rsa'}-${crypto.randomBytes(6).toString('hex')}`;
  const pair = type === 'ec'
    ? crypto.generateKeyPairSync('ec', { namedCurve: 'P-256' })
    : crypto.generateKeyPairSync('rsa', { modulusLength: 2048 });
  return { ...pair.privateKey.export({ format: 'jwk' }), kid, use: 'sig', alg: type === 'ec' ? 'ES256' : 'RS256' };
}

function loadKeys(directory) {
  fs.mkdirSync(directory, { recursive: true, mode: 0o700 });
  const file = path.join(directory, 'jwks.json');
  if (!fs.existsSync(file)) {
    const jwks = { keys: [newKey('ec'), newKey('rsa')] };
    const temporary = `${file}.${process.pid}.tmp`;
    fs.writeFileSync(temporary, `${JSON.stringify(jwks, null, 2)}\n`, { mode: 0o600 });
    fs.renameSync(temporary, file);
  }

  let jwks;
  try {
    jwks = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    fail(`${file}: ${error.message}`);
  }
  if (!Array.isArray(jwks?.keys) || jwks.keys.length === 0) fail(`${file} must be a JWKS with at least one key`);
  for (const [i, key] of jwks.keys.entries()) {
    if (typeof key.kid !== 'string' || !key.kid) fail(`${file}: keys[${i}] has no kid`);
    if (key.d === undefined) fail(`${file}: keys[${i}] (${key.kid}) has no private part`);
  }
  return jwks;
}

const jwks = loadKeys(options.state);

// ---- accounts ---------------------------------------------------------------------------------------------------

function loadAccounts(file) {
  let parsed;
  try {
    parsed = JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch (error) {
    fail(`accounts file ${file}: ${error.message}`);
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    fail(`accounts file ${file} must be a JSON object mapping each login to its claims`);
  }
  const byLogin = new Map();
  const bySub = new Map();
  for (const [login, claims] of Object.entries(parsed)) {
    if (claims === null || typeof claims !== 'object' || typeof claims.sub !== 'string' || !claims.sub) {
      fail(`accounts file ${file}: '${login}' needs an object with a non-empty string sub`);
    }
    if (bySub.has(claims.sub)) fail(`accounts file ${file}: sub '${claims.sub}' is used twice`);
    byLogin.set(login, claims);
    bySub.set(claims.sub, claims);
  }
  return { byLogin, bySub };
}

const accounts = loadAccounts(options.accounts);

// The account's own claims, without sub: what access tokens and ID tokens carry besides the standard ones.
function customClaims(account) {
  const { sub, ...rest } = account;
  return rest;
}

// ---- resources --------------------------------------------------------------------------------------------------

const keyServer = 'urn:modelseal:keys';
const keyServerScopes = 'keys models admin';
const resources = {
  [keyServer]: { audience: keyServer, scope: keyServerScopes, alg: 'ES256', ttl: 300 },
  'urn:modelseal:keys-rs': { audience: keyServer, scope: keyServerScopes, alg: 'RS256', ttl: 300 },
  'urn:modelseal:keys-long': { audience: keyServer, scope: keyServerScopes, alg: 'ES256', ttl: 2 * 24 * 3600 },
  'urn:other:api': { audience: 'urn:other:api', scope: 'keys models', alg: 'ES256', ttl: 300 },
};

// ---- the provider -----------------------------------------------------------------------------------------------

// The server listens before the provider exists: with port 0 the issuer's port is only known once it does.
let handler = (_req, res) => {
  res.statusCode = 503;
  res.end();
};
const server = http.createServer((req, res) => handler(req, res));
server.keepAliveTimeout = 5000;
server.on('error', (error) => fail(`cannot listen on 127.0.0.1:${port}: ${error.message}`));
await new Promise((resolve) => {
  server.listen(port, '127.0.0.1', resolve);
});
const issuer = `http://127.0.0.1:${server.address().port}`;

const redirectUris = ['http://127.0.0.1/callback'];
const provider = new Provider(issuer, {
  jwks,
  clients: [
    {
      client_id: 'modelseal-app',
      client_name: 'ModelSeal test app',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: redirectUris,
      id_token_signed_response_alg: 'ES256',
    },
    {
      client_id: 'modelseal-app-rs',
      client_name: 'ModelSeal test app (RS256 ID tokens)',
      application_type: 'native',
      token_endpoint_auth_method: 'none',
      grant_types: ['authorization_code'],
      response_types: ['code'],
      redirect_uris: redirectUris,
      id_token_signed_response_alg: 'RS256',
    },
  ],
  responseTypes: ['code'],
  pkce: { required: () => true },
  scopes: ['openid', 'email', 'keys', 'models', 'admin'],
  claims: {
    openid: ['sub', 'groups', 'plan', 'tenant'],
    email: ['email', 'email_verified'],
  },
  // ID tokens carry the claims of the granted scopes (not only from userinfo), so rules can match ID tokens too.
  conformIdTokenClaims: false,
  async findAccount(_ctx, sub) {
    const account = accounts.bySub.get(sub);
    if (!account) return undefined;
    return {
      accountId: sub,
      async claims() {
        return { ...account, sub };
      },
    };
  },
  async extraTokenClaims(_ctx, token) {
    const account = token.accountId ? accounts.bySub.get(token.accountId) : undefined;
    return account ? customClaims(account) : undefined;
  },
  features: {
    devInteractions: { enabled: false },
    userinfo: { enabled: true },
    rpInitiatedLogout: { enabled: false },
    resourceIndicators: {
      enabled: true,
      defaultResource: async (_ctx, _client, oneOf) => oneOf,
      useGrantedResource: async () => true,
      async getResourceServerInfo(_ctx, resourceIndicator) {
        const resource = resources[resourceIndicator];
        if (!resource) throw new errors.InvalidTarget(`unknown resource ${resourceIndicator}`);
        return {
          scope: resource.scope,
          audience: resource.audience,
          accessTokenTTL: resource.ttl,
          accessTokenFormat: 'jwt',
          jwt: { sign: { alg: resource.alg } },
        };
      },
    },
  },
  ttl: {
    AccessToken: (_ctx, token) => token.resourceServer?.accessTokenTTL ?? 300,
    AuthorizationCode: 60,
    IdToken: 300,
    Interaction: 600,
    Session: 600,
    Grant: 600,
  },
  cookies: { keys: [crypto.randomBytes(32).toString('base64url')] },
  clientAuthMethods: ['none'],
  clientBasedCORS: () => false,
  // Errors as JSON: the tests read them, nobody looks at a page.
  async renderError(ctx, out) {
    ctx.type = 'json';
    ctx.body = out;
  },
});

// ---- interactions (login, consent) ------------------------------------------------------------------------------

function readForm(req) {
  return new Promise((resolve, reject) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (chunk) => {
      body += chunk;
      if (body.length > 16384) reject(new Error('form too large'));
    });
    req.on('end', () => resolve(new URLSearchParams(body)));
    req.on('error', reject);
  });
}

function send(res, status, type, body) {
  res.statusCode = status;
  res.setHeader('Content-Type', type);
  res.setHeader('Cache-Control', 'no-store');
  res.end(body);
}

const escapeHtml = (text) => String(text).replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

async function interaction(req, res, uid, action) {
  let details;
  try {
    details = await provider.interactionDetails(req, res);
  } catch (error) {
    send(res, 400, 'application/json', JSON.stringify({ error: 'invalid_request', error_description: error.message }));
    return;
  }
  if (details.uid !== uid) {
    send(res, 400, 'application/json', JSON.stringify({ error: 'invalid_request', error_description: 'interaction mismatch' }));
    return;
  }
  const prompt = details.prompt.name;

  if (req.method === 'GET' && action === undefined) {
    const view = {
      uid, prompt, client_id: details.params.client_id, scope: details.params.scope, resource: details.params.resource,
    };
    if ((req.headers.accept ?? '').includes('application/json')) {
      send(res, 200, 'application/json', JSON.stringify(view));
    } else {
      const form = prompt === 'login'
        ? `<form method="post" action="/interaction/${uid}/login"><input name="login" autofocus><button>Sign in</button></form>`
        : `<form method="post" action="/interaction/${uid}/confirm"><button>Allow ${escapeHtml(details.params.scope)}</button></form>`;
      send(res, 200, 'text/html; charset=utf-8', `<!DOCTYPE html><title>${prompt}</title><h1>${prompt}</h1>${form}`);
    }
    return;
  }

  if (req.method === 'POST' && action === 'login' && prompt === 'login') {
    const form = await readForm(req);
    const account = accounts.byLogin.get(form.get('login') ?? '');
    const result = account
      ? { login: { accountId: account.sub } }
      : { error: 'access_denied', error_description: 'unknown login' };
    await provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
    return;
  }

  if (req.method === 'POST' && action === 'confirm' && prompt === 'consent') {
    await readForm(req);
    const { accountId } = details.session;
    const missing = details.prompt.details;
    const grant = details.grantId
      ? await provider.Grant.find(details.grantId)
      : new provider.Grant({ accountId, clientId: details.params.client_id });
    if (missing.missingOIDCScope) grant.addOIDCScope(missing.missingOIDCScope.join(' '));
    if (missing.missingOIDCClaims) grant.addOIDCClaims(missing.missingOIDCClaims);
    for (const [indicator, scopes] of Object.entries(missing.missingResourceScopes ?? {})) {
      grant.addResourceScope(indicator, scopes.join(' '));
    }
    const grantId = await grant.save();
    const consent = details.grantId ? {} : { grantId };
    await provider.interactionFinished(req, res, { consent }, { mergeWithLastSubmission: true });
    return;
  }

  send(res, 400, 'application/json', JSON.stringify({
    error: 'invalid_request', error_description: `${req.method} ${action ?? ''} does not answer the ${prompt} prompt`,
  }));
}

const providerCallback = provider.callback();
const interactionPath = /^\/interaction\/([A-Za-z0-9_-]+)(?:\/(login|confirm))?$/;
handler = (req, res) => {
  const match = interactionPath.exec(new URL(req.url, issuer).pathname);
  if (!match) {
    providerCallback(req, res);
    return;
  }
  interaction(req, res, match[1], match[2]).catch((error) => {
    process.stderr.write(`provider.mjs: interaction: ${error.stack ?? error}\n`);
    if (!res.headersSent) send(res, 500, 'application/json', JSON.stringify({ error: 'server_error' }));
  });
};

provider.on('server_error', (_ctx, error) => process.stderr.write(`provider.mjs: server_error: ${error.stack ?? error}\n`));

// ---- life cycle -------------------------------------------------------------------------------------------------

let stopping = false;
function stop() {
  if (stopping) return;
  stopping = true;
  server.close(() => process.exit(0));
  server.closeAllConnections();
}
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
if (options['exit-on-stdin-close']) {
  process.stdin.on('end', stop);
  process.stdin.on('close', stop);
  process.stdin.on('error', stop);
  process.stdin.resume();
}

process.stdout.write(`ready ${issuer}\n`);
