// The baseline of bench/oidc_token.py: panva's node-oidc-provider, configured so that one
// confidential client (client_secret_basic) gets an ES256-signed JWT access token from the
// client_credentials grant.
//
//   PORT=8101 node provider.mjs                       in memory (the library's default adapter)
//   PORT=8101 DATABASE_URL=postgres://... node provider.mjs   each issued token persisted to PostgreSQL
//
// CLIENT_ID, CLIENT_SECRET and SCOPE name the client; the bench passes the same to both servers.
import { generateKeyPairSync, randomUUID } from 'node:crypto';

import Provider from 'oidc-provider';
import pg from 'pg';

const port = Number(process.env.PORT ?? 8101);
const clientId = process.env.CLIENT_ID ?? 'bench';
const clientSecret = process.env.CLIENT_SECRET ?? 'bench-secret';
const scope = process.env.SCOPE ?? 'bench.read';
const databaseUrl = process.env.DATABASE_URL ?? '';
const resource = 'urn:bauhinia:bench';
const ttl = 600;

// A fresh P-256 key each start: the bench only checks the token's header, never a saved key.
const signingKey = {
  ...generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ format: 'jwk' }),
  kid: randomUUID(),
  alg: 'ES256',
  use: 'sig',
};

// A PostgreSQL adapter in the shape the library's adapter interface asks for: one row a model
// instance, its payload as jsonb. Only upsert is on the benchmarked path.
function postgresAdapter(pool) {
  return class PostgresAdapter {
    constructor(model) {
      this.model = model;
    }

    async upsert(id, payload, expiresIn) {
      await pool.query(
        `INSERT INTO oidc_models (id, type, payload, grant_id, uid, user_code, expires_at)
         VALUES ($1, $2, $3, $4, $5, $6, now() + make_interval(secs => $7))
         ON CONFLICT (id, type) DO UPDATE SET payload = EXCLUDED.payload, expires_at = EXCLUDED.expires_at`,
        [id, this.model, payload, payload.grantId, payload.uid, payload.userCode, expiresIn ?? 0],
      );
    }

    async #findWhere(column, value) {
      const { rows } = await pool.query(
        `SELECT payload, consumed_at FROM oidc_models
         WHERE ${column} = $1 AND type = $2 AND expires_at > now()`,
        [value, this.model],
      );
      if (!rows.length) return undefined;
      const [{ payload, consumed_at: consumed }] = rows;
      return consumed ? { ...payload, consumed: Math.floor(consumed.getTime() / 1000) } : payload;
    }

    find(id) { return this.#findWhere('id', id); }

    findByUid(uid) { return this.#findWhere('uid', uid); }

    findByUserCode(userCode) { return this.#findWhere('user_code', userCode); }

    async consume(id) {
      await pool.query('UPDATE oidc_models SET consumed_at = now() WHERE id = $1 AND type = $2', [id, this.model]);
    }

    async destroy(id) {
      await pool.query('DELETE FROM oidc_models WHERE id = $1 AND type = $2', [id, this.model]);
    }

    async revokeByGrantId(grantId) {
      await pool.query('DELETE FROM oidc_models WHERE grant_id = $1', [grantId]);
    }
  };
}

async function openPool() {
  const pool = new pg.Pool({ connectionString: databaseUrl, max: 10 });
  await pool.query(`CREATE TABLE IF NOT EXISTS oidc_models (
    id text NOT NULL, type text NOT NULL, payload jsonb NOT NULL,
    grant_id text, uid text, user_code text,
    expires_at timestamptz NOT NULL, consumed_at timestamptz,
    PRIMARY KEY (id, type))`);
  return pool;
}

const pool = databaseUrl ? await openPool() : undefined;

const provider = new Provider(`http://127.0.0.1:${port}`, {
  ...(pool ? { adapter: postgresAdapter(pool) } : {}),
  clients: [{
    client_id: clientId,
    client_secret: clientSecret,
    grant_types: ['client_credentials'],
    response_types: [],
    redirect_uris: [],
    token_endpoint_auth_method: 'client_secret_basic',
    scope,
  }],
  scopes: [scope],
  // The only key is ES256; the default (RS256) would have no key to sign with.
  clientDefaults: { id_token_signed_response_alg: 'ES256' },
  jwks: { keys: [signingKey] },
  ttl: { ClientCredentials: ttl },
  features: {
    devInteractions: { enabled: false },
    clientCredentials: { enabled: true },
    resourceIndicators: {
      enabled: true,
      defaultResource: () => resource,
      getResourceServerInfo: () => ({
        scope,
        accessTokenFormat: 'jwt',
        accessTokenTTL: ttl,
        jwt: { sign: { alg: 'ES256' } },
      }),
    },
  },
});

// Why not the adapter alone: in v9 a JWT-format token's value is self-contained, so
// BaseModel#save never calls adapter.upsert for it (it emits `client_credentials.issued`
// instead of `.saved`; see lib/models/base_model.js and lib/models/formats/jwt.js), and event
// listeners are not awaited. So in persisting mode this post-middleware writes the token's
// record through the same adapter, as the library does for opaque tokens, and the response
// waits for the write: koa sends the body only after every middleware has returned.
if (pool) {
  provider.use(async (ctx, next) => {
    await next();
    const token = ctx.oidc?.entities?.ClientCredentials;
    if (ctx.oidc?.route !== 'token' || ctx.status !== 200 || !token) return;
    const iat = Math.floor(Date.now() / 1000);
    const payload = { iat, exp: iat + token.expiration };
    for (const key of token.constructor.IN_PAYLOAD) {
      if (token[key] !== undefined && payload[key] === undefined) payload[key] = token[key];
    }
    await token.adapter.upsert(token.jti, payload, token.expiration);
  });
}

const server = provider.listen(port, '127.0.0.1');
const stop = () => server.close(() => (pool ? pool.end() : Promise.resolve()).then(() => process.exit(0)));
process.on('SIGTERM', stop);
process.on('SIGINT', stop);
