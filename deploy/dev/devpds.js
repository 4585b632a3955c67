// Runs a local did:plc directory (in memory) and the reference ATProto PDS in
// one Node process, both on 127.0.0.1 only. Started by start.sh; not for
// production. Writes the URLs to $MOODSYNC_DEV_STATE once healthy.
'use strict'
const net = require('net')
const fs = require('fs')
const path = require('path')
const crypto = require('crypto')

// The stock PDS listens on every interface; keep the dev one on loopback.
const origListen = net.Server.prototype.listen
net.Server.prototype.listen = function (...args) {
  if (typeof args[0] === 'number' && typeof args[1] !== 'string') {
    args.splice(1, 0, '127.0.0.1')
  }
  return origListen.apply(this, args)
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer()
    s.on('error', reject)
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address()
      s.close(() => resolve(port))
    })
  })
}

async function main() {
  const dataDir = process.env.MOODSYNC_DEV_DATA
  const stateFile = process.env.MOODSYNC_DEV_STATE
  fs.mkdirSync(dataDir, { recursive: true })

  const plc = require('@did-plc/server')
  const plcServer = plc.PlcServer.create({ db: plc.Database.mock(), port: await freePort() })
  const plcHttp = await plcServer.start()
  const plcPort = plcHttp.address().port

  const pdsPort = Number(process.env.MOODSYNC_DEV_PDS_PORT || 0) || (await freePort())
  const hex = (n) => crypto.randomBytes(n).toString('hex')
  const adminPassword = hex(16)
  const jwtSecret = hex(32)
  Object.assign(process.env, {
    PDS_HOSTNAME: 'localhost',
    PDS_PORT: String(pdsPort),
    PDS_DEV_MODE: 'true',
    PDS_INVITE_REQUIRED: 'false',
    PDS_RATE_LIMITS_ENABLED: 'false',
    PDS_CRAWLERS: '',
    PDS_DATA_DIRECTORY: dataDir,
    PDS_BLOBSTORE_DISK_LOCATION: path.join(dataDir, 'blobs'),
    // The PDS resolves did:plc through the local directory; it must be
    // named localhost, not 127.0.0.1.
    PDS_DID_PLC_URL: `http://localhost:${plcPort}`,
    PDS_JWT_SECRET: jwtSecret,
    PDS_ADMIN_PASSWORD: adminPassword,
    PDS_PLC_ROTATION_KEY_K256_PRIVATE_KEY_HEX: hex(32),
    PDS_DPOP_SECRET: hex(32),
    LOG_ENABLED: process.env.LOG_ENABLED || 'false',
  })

  const pdsPkg = require('@atproto/pds')
  const env = pdsPkg.readEnv()
  const startPDS = async () => {
    const p = await pdsPkg.PDS.create(pdsPkg.envToCfg(env), pdsPkg.envToSecrets(env))
    await p.start()
    return p
  }
  let pds = await startPDS()

  // A PDS restored from a backup, for tests (a private instance: see
  // devenv.NewRestorablePDS): SIGUSR1 stops the PDS, copies its data
  // directory aside and starts it again; SIGUSR2 stops it, puts that copy
  // back and starts it again. The PLC directory stays up throughout, so the
  // DIDs still resolve. Each is acknowledged in $MOODSYNC_DEV_STATE.ack.
  const snapshotDir = dataDir + '.snapshot'
  let acks = 0
  let busy = Promise.resolve()
  const cycle = (what) => {
    busy = busy.then(async () => {
      await pds.destroy()
      if (what === 'snapshot') {
        fs.rmSync(snapshotDir, { recursive: true, force: true })
        fs.cpSync(dataDir, snapshotDir, { recursive: true })
      } else {
        fs.rmSync(dataDir, { recursive: true, force: true })
        fs.cpSync(snapshotDir, dataDir, { recursive: true })
      }
      pds = await startPDS()
      acks++
      fs.writeFileSync(stateFile + '.ack', `${what} ${acks}\n`)
    }).catch((err) => {
      console.error(err)
      process.exit(1)
    })
  }
  process.on('SIGUSR1', () => cycle('snapshot'))
  process.on('SIGUSR2', () => cycle('restore'))

  const state = [
    `MOODSYNC_DEV_PID=${process.pid}`,
    `MOODSYNC_DEV_PDS_URL=http://127.0.0.1:${pdsPort}`,
    `MOODSYNC_DEV_PLC_URL=http://127.0.0.1:${plcPort}`,
    `MOODSYNC_DEV_ADMIN_PASSWORD=${adminPassword}`,
    // Lets tests mint an expired access token to exercise session refresh.
    `MOODSYNC_DEV_JWT_SECRET=${jwtSecret}`,
  ].join('\n') + '\n'
  fs.writeFileSync(stateFile + '.tmp', state, { mode: 0o600 })
  fs.renameSync(stateFile + '.tmp', stateFile)

  const stop = async () => {
    try { await pds.destroy() } catch (e) {}
    try { await plcServer.destroy() } catch (e) {}
    process.exit(0)
  }
  process.on('SIGTERM', stop)
  process.on('SIGINT', stop)
}

main().catch((err) => {
  console.error(err)
  process.exit(1)
})
