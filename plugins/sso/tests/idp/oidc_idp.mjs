// A real OpenID provider (npm oidc-provider v9) for the SSO tests.
// argv[2]: JSON config {port, jwks, modules}. Clients register dynamically (POST /reg).
// Test controls: POST /test/account {email, ...claims}, POST /test/id-token {token} (the next token
// response carries this ID token instead: an IdP that misbehaves), GET /test/stats.
import fs from 'node:fs';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const config = JSON.parse(fs.readFileSync(process.argv[2], 'utf8'));
const require = createRequire(config.modules + '/');
const { default: Provider } = await import(pathToFileURL(require.resolve('oidc-provider')).href);

const accounts = new Map();
const overrides = [];
const stats = { jwks: 0, token: 0 };

function claimsFor(id) {
  const extra = accounts.get(id) || {};
  const local = id.split('@')[0];
  return { sub: id, email: id, email_verified: true, name: local.replace(/[._-]/g, ' '), groups: [], ...extra };
}

const issuer = `http://127.0.0.1:${config.port}`;
const provider = new Provider(issuer, {
  jwks: config.jwks,
  cookies: { keys: ['portal-sso-tests-cookie-key'] },
  clients: [],
  features: {
    devInteractions: { enabled: false },
    registration: { enabled: true },
  },
  claims: { openid: ['sub'], email: ['email', 'email_verified'], profile: ['name'], groups: ['groups'] },
  scopes: ['openid', 'email', 'profile', 'groups'],
  conformIdTokenClaims: false,
  pkce: { required: () => true },
  interactions: { url: (ctx, interaction) => `/interaction/${interaction.uid}` },
  findAccount: async (ctx, id) => ({ accountId: id, claims: async () => claimsFor(id) }),
});

async function readJson(req) {
  let body = '';
  for await (const chunk of req) body += chunk;
  return body ? JSON.parse(body) : {};
}

provider.use(async (ctx, next) => {
  if (ctx.path === '/test/account' && ctx.method === 'POST') {
    const data = await readJson(ctx.req);
    accounts.set(data.email, data);
    ctx.body = { ok: true };
    return;
  }
  if (ctx.path === '/test/id-token' && ctx.method === 'POST') {
    overrides.push((await readJson(ctx.req)).token);
    ctx.body = { ok: true };
    return;
  }
  if (ctx.path === '/test/stats') {
    ctx.body = stats;
    return;
  }
  if (ctx.path.startsWith('/interaction/')) {
    const details = await provider.interactionDetails(ctx.req, ctx.res);
    const { prompt, params } = details;
    if (prompt.name === 'login') {
      await provider.interactionFinished(ctx.req, ctx.res,
        { login: { accountId: params.login_hint || 'someone@example.org' } }, { mergeWithLastSubmission: false });
    } else {
      const grant = details.grantId ? await provider.Grant.find(details.grantId)
        : new provider.Grant({ accountId: details.session.accountId, clientId: params.client_id });
      if (prompt.details.missingOIDCScope) grant.addOIDCScope(prompt.details.missingOIDCScope.join(' '));
      if (prompt.details.missingOIDCClaims) grant.addOIDCClaims(prompt.details.missingOIDCClaims);
      const grantId = await grant.save();
      await provider.interactionFinished(ctx.req, ctx.res, { consent: { grantId } }, { mergeWithLastSubmission: true });
    }
    ctx.respond = false;
    return;
  }
  if (ctx.path === '/jwks') stats.jwks += 1;
  await next();
  if (ctx.path === '/token' && ctx.method === 'POST') {
    stats.token += 1;
    if (ctx.status === 200 && overrides.length && ctx.body && typeof ctx.body === 'object') {
      ctx.body = { ...ctx.body, id_token: overrides.shift() };
    }
  }
});

provider.listen(config.port, '127.0.0.1', () => { console.log('READY ' + issuer); });
