// A strict relying party: panva's openid-client (a certified RP library) against a running Bauhinia.
//
//   node rp.mjs CONFIG.json
//
// CONFIG: { issuer, client_id, private_jwk, redirect_uri, post_logout_redirect_uri }.
// It talks to the Python test in JSON lines: it writes one object a line to stdout and, when the object
// has a `need`, reads one object a line from stdin:
//   {"need": "callback", "login": "first"|"second", "authorization_url"}  <- {"callback_url"}
//   {"need": "logout", "end_session_url"}                                 <- {"logout_token"}
// and ends with {"summary": {checks, failed, observed}}. The exit status is 1 when any check failed.
// Everything else (diagnostics) goes to stderr.

import { readFile } from 'node:fs/promises'
import { createHash } from 'node:crypto'
import { createInterface } from 'node:readline'
import * as client from 'openid-client'
import * as jose from 'jose'

const BACKCHANNEL_LOGOUT_EVENT = 'http://schemas.openid.net/event/backchannel-logout'
const SCOPE = 'openid profile email address phone'
const CLOCK_TOLERANCE = 5 // seconds

const config = JSON.parse(await readFile(process.argv[2], 'utf8'))
const checks = []
const observed = {}
const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

// --- the protocol with the test -------------------------------------------------------------------

function say (message) {
  process.stdout.write(JSON.stringify(message) + '\n')
}

async function ask (message) {
  say(message)
  const line = await input.next()
  if (line.done) throw new Error(`the test closed stdin while the RP needed ${message.need}`)
  return JSON.parse(line.value)
}

function check (name, ok, detail = '') {
  checks.push({ name, ok: Boolean(ok), detail: ok ? '' : String(detail) })
  if (!ok) process.stderr.write(`FAILED ${name}: ${detail}\n`)
}

function describe (error) {
  if (error === null || typeof error !== 'object') return String(error)
  const parts = [error.name, error.code, error.error, error.error_description, error.message]
  if (error.status) parts.push(`status ${error.status}`)
  if (error.cause && typeof error.cause === 'object') parts.push(`cause: ${JSON.stringify(error.cause)}`)
  return parts.filter(Boolean).join(' | ')
}

/** An OAuth error answer: from the body (token endpoint) or from WWW-Authenticate (resource server). */
function oauthErrorCode (error) {
  if (typeof error?.error === 'string') return error.error
  const challenges = error?.cause
  if (Array.isArray(challenges)) {
    for (const challenge of challenges) {
      if (typeof challenge?.parameters?.error === 'string') return challenge.parameters.error
    }
  }
  return undefined
}

async function expectRefused (name, expectedCode, action) {
  try {
    await action()
    check(name, false, `succeeded, but ${expectedCode} was expected`)
  } catch (error) {
    const code = oauthErrorCode(error)
    check(name, code === expectedCode, `expected ${expectedCode}, got ${describe(error)}`)
  }
}

// --- independent checks of what the provider signs -------------------------------------------------

function halfHash (value) {
  // at_hash for ES256 (OIDC Core §3.1.3.6): the left half of SHA-256 of the ASCII access token, base64url.
  const digest = createHash('sha256').update(value, 'ascii').digest()
  return digest.subarray(0, digest.length / 2).toString('base64url')
}

async function verifyIdToken (label, idToken, accessToken, expected) {
  const header = jose.decodeProtectedHeader(idToken)
  check(`${label}: ID token signed with ES256 and a kid`, header.alg === 'ES256' && typeof header.kid === 'string', JSON.stringify(header))
  const { payload } = await jose.jwtVerify(idToken, jwks, {
    issuer: config.issuer,
    audience: config.client_id,
    algorithms: ['ES256'],
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'auth_time', 'at_hash', 'sid'],
    clockTolerance: CLOCK_TOLERANCE,
  })
  check(`${label}: ID token signature verifies against the JWKS (jose), iss and aud are ours`, true)
  check(`${label}: ID token aud is only this client`, payload.aud === config.client_id || (Array.isArray(payload.aud) && payload.aud.length === 1 && payload.aud[0] === config.client_id), JSON.stringify(payload.aud))
  check(`${label}: ID token at_hash is the left half of SHA-256 of the access token`, payload.at_hash === halfHash(accessToken), `${payload.at_hash} != ${halfHash(accessToken)}`)
  if ('nonce' in expected) {
    check(`${label}: ID token nonce is the request's`, payload.nonce === expected.nonce, `${payload.nonce} != ${expected.nonce}`)
  }
  if (expected.sub !== undefined) {
    check(`${label}: ID token sub is unchanged`, payload.sub === expected.sub, `${payload.sub} != ${expected.sub}`)
  }
  if (expected.sid !== undefined) {
    check(`${label}: ID token sid is the browser session's`, payload.sid === expected.sid, `${payload.sid} != ${expected.sid}`)
  }
  const now = Math.floor(Date.now() / 1000)
  check(`${label}: ID token auth_time is in the past`, Number.isInteger(payload.auth_time) && payload.auth_time <= now + CLOCK_TOLERANCE, String(payload.auth_time))
  check(`${label}: ID token lives at most an hour`, payload.exp - payload.iat > 0 && payload.exp - payload.iat <= 3600, `${payload.iat}..${payload.exp}`)
  check(`${label}: ID token has an acr and an amr`, typeof payload.acr === 'string' && Array.isArray(payload.amr) && payload.amr.length > 0, JSON.stringify([payload.acr, payload.amr]))
  return payload
}

async function verifyAccessToken (label, accessToken, expectedSub) {
  const header = jose.decodeProtectedHeader(accessToken)
  check(`${label}: access token is a JWT with typ at+jwt (RFC 9068)`, header.typ === 'at+jwt', JSON.stringify(header))
  const { payload } = await jose.jwtVerify(accessToken, jwks, {
    issuer: config.issuer,
    audience: config.issuer,
    algorithms: ['ES256'],
    typ: 'at+jwt',
    requiredClaims: ['iss', 'sub', 'aud', 'exp', 'iat', 'jti', 'client_id'],
    clockTolerance: CLOCK_TOLERANCE,
  })
  check(`${label}: access token signature verifies against the JWKS, iss and aud are ours`, true)
  check(`${label}: access token cnf.jkt is the thumbprint of the RP's DPoP key`, payload.cnf?.jkt === dpopThumbprint, `${JSON.stringify(payload.cnf)} != ${dpopThumbprint}`)
  check(`${label}: access token client_id is this client`, payload.client_id === config.client_id, payload.client_id)
  check(`${label}: access token sub is the ID token's`, payload.sub === expectedSub, `${payload.sub} != ${expectedSub}`)
  check(`${label}: access token scope has openid`, String(payload.scope).split(' ').includes('openid'), payload.scope)
  return payload
}

// --- one sign-in ------------------------------------------------------------------------------------

async function signIn (login) {
  const codeVerifier = client.randomPKCECodeVerifier()
  const state = client.randomState()
  const nonce = client.randomNonce()
  const authorizationUrl = await client.buildAuthorizationUrlWithPAR(
    oidc,
    {
      redirect_uri: config.redirect_uri,
      scope: SCOPE,
      code_challenge: await client.calculatePKCECodeChallenge(codeVerifier),
      code_challenge_method: 'S256',
      state,
      nonce,
    },
    { DPoP },
  )
  const query = [...authorizationUrl.searchParams.keys()].sort()
  check(`${login} sign-in: the authorization URL carries only client_id and request_uri (PAR)`, JSON.stringify(query) === '["client_id","request_uri"]', authorizationUrl.href)
  const { callback_url: callbackUrl } = await ask({ need: 'callback', login, authorization_url: authorizationUrl.href })
  const callback = new URL(callbackUrl)
  check(`${login} sign-in: the response names our issuer (RFC 9207)`, callback.searchParams.get('iss') === config.issuer, callbackUrl)
  const tokens = await client.authorizationCodeGrant(
    oidc,
    callback,
    { pkceCodeVerifier: codeVerifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true },
    undefined,
    { DPoP },
  )
  check(`${login} sign-in: openid-client accepted the code grant (state, iss, nonce, ID token signature)`, true)
  check(`${login} sign-in: token_type is DPoP`, tokens.token_type?.toLowerCase() === 'dpop', tokens.token_type)
  check(`${login} sign-in: a refresh token is issued`, typeof tokens.refresh_token === 'string' && tokens.refresh_token.length >= 32, tokens.refresh_token)
  const claims = tokens.claims()
  check(`${login} sign-in: openid-client parsed the ID token`, claims !== undefined && claims.nonce === nonce, JSON.stringify(claims))
  const idClaims = await verifyIdToken(`${login} sign-in`, tokens.id_token, tokens.access_token, { nonce })
  const accessClaims = await verifyAccessToken(`${login} sign-in`, tokens.access_token, idClaims.sub)
  const replay = () => client.authorizationCodeGrant(
    oidc,
    callback,
    { pkceCodeVerifier: codeVerifier, expectedNonce: nonce, expectedState: state, idTokenExpected: true },
    undefined,
    { DPoP },
  )
  return { tokens, idClaims, accessClaims, replay }
}

async function introspect (token) {
  return client.tokenIntrospection(oidc, token)
}

// --- the run ----------------------------------------------------------------------------------------

let oidc, DPoP, jwks, dpopThumbprint

async function run () {
  const privateKey = await jose.importJWK(config.private_jwk, 'ES256')
  oidc = await client.discovery(
    new URL(config.issuer),
    config.client_id,
    { id_token_signed_response_alg: 'ES256', token_endpoint_auth_method: 'private_key_jwt' },
    client.PrivateKeyJwt({ key: privateKey, kid: config.private_jwk.kid }),
    // http only because the test server is on localhost; signatures of ID tokens are checked too.
    { execute: config.issuer.startsWith('http:') ? [client.allowInsecureRequests, client.enableNonRepudiationChecks] : [client.enableNonRepudiationChecks] },
  )
  const metadata = oidc.serverMetadata()
  check('discovery: issuer is exactly ours', metadata.issuer === config.issuer, metadata.issuer)
  check('discovery: PAR endpoint', typeof metadata.pushed_authorization_request_endpoint === 'string')
  check('discovery: PKCE S256', metadata.code_challenge_methods_supported?.includes('S256'))
  check('discovery: DPoP with ES256', metadata.dpop_signing_alg_values_supported?.includes('ES256'))
  check('discovery: private_key_jwt', metadata.token_endpoint_auth_methods_supported?.includes('private_key_jwt'))
  check('discovery: back-channel logout with sid', metadata.backchannel_logout_supported === true && metadata.backchannel_logout_session_supported === true)
  check('discovery: RFC 9207 iss', metadata.authorization_response_iss_parameter_supported === true)
  jwks = jose.createRemoteJWKSet(new URL(metadata.jwks_uri))

  const keyPair = await client.randomDPoPKeyPair('ES256')
  DPoP = client.getDPoPHandle(oidc, keyPair)
  dpopThumbprint = await jose.calculateJwkThumbprint(await jose.exportJWK(keyPair.publicKey), 'sha256')

  // First sign-in: PAR + code + PKCE + DPoP, with the resident's consent in the browser.
  const first = await signIn('first')
  const sub = first.idClaims.sub
  const sid = first.idClaims.sid
  observed.sub = sub
  observed.sid = sid
  observed.id_token_claims = first.idClaims
  observed.access_token_claims = first.accessClaims

  const userinfo = await client.fetchUserInfo(oidc, first.tokens.access_token, sub, { DPoP })
  check('userinfo (DPoP): answered for the same sub', userinfo.sub === sub, userinfo.sub)
  observed.userinfo_first = userinfo
  await expectRefused('userinfo: a DPoP-bound token without its proof is refused', 'invalid_token', () =>
    client.fetchUserInfo(oidc, first.tokens.access_token, sub))

  // Sender-constrained: another key's proofs get nothing with these tokens (and spend nothing).
  const otherDPoP = client.getDPoPHandle(oidc, await client.randomDPoPKeyPair('ES256'))
  await expectRefused('userinfo: a proof made with another key is refused', 'invalid_token', () =>
    client.fetchUserInfo(oidc, first.tokens.access_token, sub, { DPoP: otherDPoP }))
  await expectRefused('refresh: the refresh token is bound to our DPoP key; another key gets invalid_grant', 'invalid_grant', () =>
    client.refreshTokenGrant(oidc, first.tokens.refresh_token, undefined, { DPoP: otherDPoP }))

  const activeAccess = await introspect(first.tokens.access_token)
  check('introspection: the access token is active', activeAccess.active === true, JSON.stringify(activeAccess))
  check('introspection: the access token is this client\'s, for this sub', activeAccess.client_id === config.client_id && activeAccess.sub === sub, JSON.stringify(activeAccess))
  check('introspection: the access token is DPoP-bound to our key', activeAccess.cnf?.jkt === dpopThumbprint && activeAccess.token_type === 'DPoP', JSON.stringify(activeAccess))
  const activeRefresh = await introspect(first.tokens.refresh_token)
  check('introspection: the refresh token is active', activeRefresh.active === true && activeRefresh.token_type === 'refresh_token', JSON.stringify(activeRefresh))

  // Refresh with rotation.
  const refreshed = await client.refreshTokenGrant(oidc, first.tokens.refresh_token, undefined, { DPoP })
  check('refresh: openid-client accepted the response', true)
  check('refresh: the refresh token rotated', typeof refreshed.refresh_token === 'string' && refreshed.refresh_token !== first.tokens.refresh_token)
  check('refresh: a new access token', refreshed.access_token !== first.tokens.access_token)
  check('refresh: token_type is DPoP', refreshed.token_type?.toLowerCase() === 'dpop', refreshed.token_type)
  await verifyAccessToken('refresh', refreshed.access_token, sub)
  if (refreshed.id_token !== undefined) {
    await verifyIdToken('refresh', refreshed.id_token, refreshed.access_token, { sub, sid })
  }
  const userinfoAfterRefresh = await client.fetchUserInfo(oidc, refreshed.access_token, sub, { DPoP })
  check('refresh: userinfo answers with the new access token', userinfoAfterRefresh.sub === sub)
  check('introspection: the used refresh token is no longer active', (await introspect(first.tokens.refresh_token)).active === false)
  check('introspection: the new refresh token is active', (await introspect(refreshed.refresh_token)).active === true)

  // Revocation of an access token alone (RFC 7009).
  await client.tokenRevocation(oidc, refreshed.access_token)
  check('revocation: the revoked access token introspects as inactive', (await introspect(refreshed.access_token)).active === false)
  await expectRefused('revocation: userinfo refuses the revoked access token', 'invalid_token', () =>
    client.fetchUserInfo(oidc, refreshed.access_token, sub, { DPoP }))
  check('revocation: the refresh token of the grant is still active', (await introspect(refreshed.refresh_token)).active === true)

  // Reuse of a rotated refresh token: refused, and the whole grant is revoked.
  await expectRefused('refresh: reusing the rotated refresh token is invalid_grant', 'invalid_grant', () =>
    client.refreshTokenGrant(oidc, first.tokens.refresh_token, undefined, { DPoP }))
  await expectRefused('refresh: after a reuse, the newest refresh token fails too', 'invalid_grant', () =>
    client.refreshTokenGrant(oidc, refreshed.refresh_token, undefined, { DPoP }))
  check('refresh: after a reuse, the first access token is inactive', (await introspect(first.tokens.access_token)).active === false)

  // Second sign-in in the same browser session: the remembered consent, no page; a new grant, same sid.
  const second = await signIn('second')
  check('second sign-in: same pairwise sub', second.idClaims.sub === sub, `${second.idClaims.sub} != ${sub}`)
  check('second sign-in: same sid (one browser session)', second.idClaims.sid === sid, `${second.idClaims.sid} != ${sid}`)
  observed.userinfo_second = await client.fetchUserInfo(oidc, second.tokens.access_token, sub, { DPoP })
  check('second sign-in: the access token is active', (await introspect(second.tokens.access_token)).active === true)

  // RP-initiated logout; the test visits the URL in the browser and hands back the back-channel logout token.
  const logoutState = client.randomState()
  const endSessionUrl = client.buildEndSessionUrl(oidc, {
    id_token_hint: second.tokens.id_token,
    post_logout_redirect_uri: config.post_logout_redirect_uri,
    state: logoutState,
  })
  observed.logout_state = logoutState
  const { logout_token: logoutToken } = await ask({ need: 'logout', end_session_url: endSessionUrl.href })
  const logoutHeader = jose.decodeProtectedHeader(logoutToken)
  check('back-channel logout: typ logout+jwt', logoutHeader.typ === 'logout+jwt', JSON.stringify(logoutHeader))
  const { payload: logout } = await jose.jwtVerify(logoutToken, jwks, {
    issuer: config.issuer,
    audience: config.client_id,
    algorithms: ['ES256'],
    typ: 'logout+jwt',
    requiredClaims: ['iss', 'aud', 'iat', 'exp', 'jti', 'events', 'sid'],
    clockTolerance: CLOCK_TOLERANCE,
  })
  check('back-channel logout: the logout token verifies against the JWKS, iss and aud are ours', true)
  check('back-channel logout: the event is the back-channel logout event', typeof logout.events === 'object' && BACKCHANNEL_LOGOUT_EVENT in logout.events && typeof logout.events[BACKCHANNEL_LOGOUT_EVENT] === 'object', JSON.stringify(logout.events))
  check('back-channel logout: sid is the ID token\'s', logout.sid === sid, `${logout.sid} != ${sid}`)
  check('back-channel logout: sub is the ID token\'s', logout.sub === sub, `${logout.sub} != ${sub}`)
  check('back-channel logout: no nonce (OIDC Back-Channel Logout §2.4)', !('nonce' in logout))
  observed.logout_token_claims = logout

  check('logout: the second grant\'s access token is inactive', (await introspect(second.tokens.access_token)).active === false)
  check('logout: the second grant\'s refresh token is inactive', (await introspect(second.tokens.refresh_token)).active === false)
  await expectRefused('logout: the second grant\'s refresh token is invalid_grant', 'invalid_grant', () =>
    client.refreshTokenGrant(oidc, second.tokens.refresh_token, undefined, { DPoP }))
  await expectRefused('code: an authorization code is good once', 'invalid_grant', second.replay)
}

let status = 0
try {
  await run()
} catch (error) {
  check('the flow ran to its end', false, describe(error) + (error?.stack ? `\n${error.stack}` : ''))
}
const failed = checks.filter((c) => !c.ok).map((c) => c.name)
if (failed.length > 0 || checks.length === 0) status = 1
say({ summary: { checks, failed, observed } })
process.exitCode = status
input.return?.()
process.stdin.destroy()
