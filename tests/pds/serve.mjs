// The reference atproto PDS and a PLC directory on loopback, for tests of the Bluesky adapter.
//
//   node tests/pds/serve.mjs [--ignore-stdin] [handle ...]     (default handles: newsroom.test ceo.test)
//
// Starts @atproto/dev-env's TestNetworkNoAppView (PLC in memory, PDS with SQLite + blobs in a temp
// dir, both on 127.0.0.1 at free ports), creates one account per handle plus an app password each,
// then prints exactly ONE line of JSON on stdout and nothing else:
//   {"pds": "http://127.0.0.1:PORT", "plc": "http://127.0.0.1:PORT", "pds_public_url": "http://localhost:PORT",
//    "admin_password": "...", "jwt_secret": "...",
//    "accounts": [{"handle", "did", "password", "app_password", "email"}, ...]}
// It runs until stdin closes (its parent went away) or SIGTERM/SIGINT, then shuts down and removes
// its temp dir. Everything else (logs, warnings) goes to stderr. Handles must be ONE label of 3-18
// chars + ".test" (the PDS's service handle domain) and not on its reserved list ("company" is). Exit code 1 with a message on stderr if startup fails.
import dns from 'node:dns'
import fs from 'node:fs'
import net from 'node:net'
import os from 'node:os'
import path from 'node:path'

const args = process.argv.slice(2)
const ignoreStdin = args.includes('--ignore-stdin')
const handles = args.filter((a) => !a.startsWith('--'))
if (handles.length === 0) handles.push('newsroom.test', 'ceo.test')

// stdout carries only the JSON line: route console output to stderr, and pino (if LOG_ENABLED) too.
const writeStdout = (text) => fs.writeSync(1, text)
for (const name of ['log', 'info', 'debug']) console[name] = console.error
process.env.LOG_DESTINATION ??= '/dev/stderr'

// Loopback only: the PDS and PLC servers call listen(port) with no host, i.e. every interface.
const listen = net.Server.prototype.listen
net.Server.prototype.listen = function (...a) {
  if (typeof a[0] === 'number' && typeof a[1] !== 'string') a.splice(1, 0, '127.0.0.1')
  return listen.apply(this, a)
}
// dev-env names both servers http://localhost:PORT; make "localhost" mean 127.0.0.1 in here.
dns.setDefaultResultOrder('ipv4first')

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'relay-test-pds-'))
// dev-env also makes a (then unused) dir of its own in os.tmpdir(): keep that inside ours too.
process.env.TMPDIR = tmp
let network
let stopping = false

const stop = async (code) => {
  if (stopping) return
  stopping = true
  const watchdog = setTimeout(() => process.exit(code), 5000)
  watchdog.unref()
  try {
    await network?.close()
  } catch (err) {
    console.error('test PDS: error while closing:', err)
  }
  fs.rmSync(tmp, { recursive: true, force: true })
  process.exit(code)
}
process.on('SIGTERM', () => stop(0))
process.on('SIGINT', () => stop(0))
let ready = false
if (!ignoreStdin) {
  const gone = () => {
    if (!ready && !stopping) console.error('test PDS: stdin closed before it was ready; --ignore-stdin runs it detached')
    stop(0)
  }
  process.stdin.on('end', gone)
  process.stdin.on('close', gone)
  process.stdin.on('error', gone)
  process.stdin.resume()
}

const xrpc = async (base, nsid, body, token) => {
  const res = await fetch(`${base}/xrpc/${nsid}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  })
  const data = await res.json()
  if (!res.ok) throw new Error(`${nsid} -> ${res.status} ${JSON.stringify(data)}`)
  return data
}

try {
  const { TestNetworkNoAppView } = await import('@atproto/dev-env')
  const { ADMIN_PASSWORD, JWT_SECRET } = await import('@atproto/dev-env/dist/const.js')
  fs.mkdirSync(path.join(tmp, 'data'))
  network = await TestNetworkNoAppView.create({
    pds: {
      dataDirectory: path.join(tmp, 'data'),
      blobstoreDiskLocation: path.join(tmp, 'blobs'),
      blobstoreDiskTmpLocation: path.join(tmp, 'blobs-tmp'),
    },
  })
  const pds = `http://127.0.0.1:${network.pds.port}`
  const seed = network.getSeedClient()
  const accounts = []
  for (const handle of handles) {
    const name = handle.split('.')[0]
    const password = `${name}-password`
    const email = `${name}@example.com`
    const account = await seed.createAccount(name, { handle, email, password })
    const { password: appPassword } = await xrpc(
      pds,
      'com.atproto.server.createAppPassword',
      { name: 'relay-tests' },
      account.accessJwt,
    )
    accounts.push({ handle: account.handle, did: account.did, password, app_password: appPassword, email })
  }
  if (stopping) process.exit(0)
  ready = true
  writeStdout(
    JSON.stringify({
      pds,
      plc: `http://127.0.0.1:${network.plc.port}`,
      pds_public_url: network.pds.url,
      admin_password: ADMIN_PASSWORD,
      jwt_secret: JWT_SECRET,
      accounts,
    }) + '\n',
  )
} catch (err) {
  console.error('test PDS: failed to start:', err)
  await stop(1)
}
