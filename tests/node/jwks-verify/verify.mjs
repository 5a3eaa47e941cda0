// Verifies a JWT with jose against a JWKS only (docs/protocol.md section 1), the way a third party would.
//
//   node verify.mjs --jwks <URL of the JWKS | file with the JWKS JSON> --issuer <iss> --audience <aud>   (token on stdin)
//
// The token is read from standard input (not an argument, so that it does not show in process lists). On success it
// prints {"protectedHeader": ..., "payload": ...} as one line of JSON and exits 0; a token that does not verify
// prints "rejected: <jose error code>: <message>" to stderr and exits 1; a usage error exits 2.
import { readFileSync } from 'node:fs';
import { createLocalJWKSet, createRemoteJWKSet, jwtVerify } from 'jose';

function usage(message) {
  process.stderr.write(`${message}\nusage: node verify.mjs --jwks URL|FILE --issuer ISS --audience AUD < token\n`);
  process.exit(2);
}

const args = {};
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i += 2) {
  const name = argv[i];
  if (!['--jwks', '--issuer', '--audience'].includes(name) || i + 1 >= argv.length) {
    usage(`unexpected argument '${name}'`);
  }
  args[name.slice(2)] = argv[i + 1];
}
for (const required of ['jwks', 'issuer', 'audience']) {
  if (!args[required]) {
    usage(`missing --${required}`);
  }
}

const token = readFileSync(0, 'utf8').trim();
if (token.length === 0) {
  usage('no token on standard input');
}

const keys = /^https?:\/\//.test(args.jwks)
  ? createRemoteJWKSet(new URL(args.jwks))
  : createLocalJWKSet(JSON.parse(readFileSync(args.jwks, 'utf8')));

try {
  const { payload, protectedHeader } = await jwtVerify(token, keys, {
    algorithms: ['ES256'],
    issuer: args.issuer,
    audience: args.audience,
  });
  process.stdout.write(`${JSON.stringify({ protectedHeader, payload })}\n`);
} catch (error) {
  process.stderr.write(`rejected: ${error?.code ?? 'ERR_UNKNOWN'}: ${error?.message ?? error}\n`);
  process.exit(1);
}
