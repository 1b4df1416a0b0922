// The other side of sotto-tokens' interoperability test (tests/interop.rs): Cloudflare's
// privacypass-ts (0.8.1) as issuer, client and origin for publicly verifiable tokens (RFC 9578 type 2).
// One JSON command per line on stdin, one JSON answer per line on stdout; values in hex. It
// trusts its input: it only ever talks to the test that started it.

import { createInterface } from 'node:readline';

import { TOKEN_TYPES, Token, TokenChallenge, publicVerif } from '@cloudflare/privacypass-ts';

const { BlindRSAMode, Client, Issuer, Origin, TokenRequest, TokenResponse } = publicVerif;

const hex = (bytes) => Buffer.from(bytes).toString('hex');
const unhex = (text) => new Uint8Array(Buffer.from(text, 'hex'));
const params = { name: 'RSA-PSS', hash: 'SHA-384' };

let issuer;
let publicKey;
let spki;
let client;

async function handle(cmd) {
    switch (cmd.op) {
        case 'keys': {
            // The client takes the RSASSA-PSS SPKI RFC 9578 publishes (`pk`); WebCrypto imports
            // only the rsaEncryption form of the same key (`pk_enc`).
            spki = unhex(cmd.pk);
            publicKey = await crypto.subtle.importKey('spki', unhex(cmd.pk_enc), params, true, [
                'verify',
            ]);
            const privateKey = await crypto.subtle.importKey('pkcs8', unhex(cmd.sk), params, true, [
                'sign',
            ]);
            issuer = new Issuer(BlindRSAMode.PSS, 'interop', privateKey, publicKey);
            return { ok: true };
        }
        case 'issue': {
            const request = TokenRequest.deserialize(TOKEN_TYPES.BLIND_RSA, unhex(cmd.request));
            return { response: hex((await issuer.issue(request)).serialize()) };
        }
        case 'verify': {
            const token = Token.deserialize(TOKEN_TYPES.BLIND_RSA, unhex(cmd.token));
            return { valid: await new Origin(BlindRSAMode.PSS).verify(token, publicKey) };
        }
        case 'request': {
            client = new Client(BlindRSAMode.PSS);
            const challenge = TokenChallenge.deserialize(unhex(cmd.challenge));
            return { request: hex((await client.createTokenRequest(challenge, spki)).serialize()) };
        }
        case 'finalize': {
            const token = await client.finalize(TokenResponse.deserialize(unhex(cmd.response)));
            return { token: hex(token.serialize()) };
        }
        default:
            return { error: `unknown op ${cmd.op}` };
    }
}

for await (const line of createInterface({ input: process.stdin })) {
    let answer;
    try {
        answer = await handle(JSON.parse(line));
    } catch (e) {
        answer = { error: String(e) };
    }
    process.stdout.write(`${JSON.stringify(answer)}\n`);
}
