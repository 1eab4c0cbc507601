#!/usr/bin/env node
// Switchyard test client: the official Node.js MongoDB driver (the `mongodb` package, pinned in package.json),
// built and cached by scripts/install-test-clients.sh, driven by tests/integration/test_mongo_node_client.py.
// Each mode prints one JSON line on stdout (EJSON, relaxed) and exits 0; a driver error inside a mode is part
// of that line ({ok: false, code, codeName, errmsg}), anything else exits non-zero.
//
//   sy_node_mongo.js crud URI DB   CRUD, a sorted cursor read in batches of 20 (getMore count from command
//                                  monitoring), an aggregation, the authenticated users
//   sy_node_mongo.js ping URI      {ok: true} or the server's error (a wrong password: code 18)
//   sy_node_mongo.js set URI DB COLL ID   updateOne({_id: ID}, {$set: {v: 1}}), ID a JSON value (a small
//                                  integer is a JS number: the driver sends it as an int32)
//   sy_node_mongo.js loop URI DB W W concurrent writers (insert a document, then $inc it), "ready" once each has
//                                  written, until a line "stop" on stdin: the acknowledged _ids and every error
'use strict';

const readline = require('readline');
const { MongoClient, BSON } = require('mongodb');
const { EJSON } = BSON;

function out(obj) {
    process.stdout.write(EJSON.stringify(obj, { relaxed: true }) + '\n');
}

function errorOf(e) {
    return { ok: false, name: e.name, code: e.code, codeName: e.codeName, errmsg: e.errmsg || e.message,
             labels: e.errorLabels || [] };
}

function client(uri, extra) {
    return new MongoClient(uri, Object.assign({ serverSelectionTimeoutMS: 20000, connectTimeoutMS: 10000 },
                                              extra || {}));
}

async function crud(uri, dbName) {
    const c = client(uri, { monitorCommands: true });
    let getMores = 0;
    c.on('commandStarted', (ev) => { if (ev.commandName === 'getMore') getMores++; });
    try {
        await c.connect();
        const db = c.db(dbName);
        const coll = db.collection('nodecrud');
        await coll.drop().catch(() => {});
        const r = {};
        const docs = [];
        for (let i = 0; i < 150; i++)
            docs.push({ _id: i, g: i % 5, s: 'doc ✓ ' + i, n: { a: i, l: [i, i * 2] } });
        r.insertMany = (await coll.insertMany(docs)).insertedCount;
        r.insertOne = (await coll.insertOne({ _id: 'one', g: 9, s: 'single' })).insertedId;
        const u1 = await coll.updateOne({ _id: 3 }, { $set: { s: 'three' } });
        const um = await coll.updateMany({ g: 1 }, { $inc: { 'n.a': 1000 } });
        const rp = await coll.replaceOne({ _id: 4 }, { g: 4, s: 'replaced' });
        const ups = await coll.updateOne({ _id: 'upserted' }, { $set: { g: 8 } }, { upsert: true });
        r.updates = [u1.matchedCount, u1.modifiedCount, um.matchedCount, um.modifiedCount, rp.modifiedCount,
                     ups.upsertedId];
        r.deleteOne = (await coll.deleteOne({ _id: 0 })).deletedCount;
        r.deleteMany = (await coll.deleteMany({ g: 2 })).deletedCount;
        r.findOne = await coll.findOne({ _id: 3 });
        r.count = await coll.countDocuments({});
        const before = getMores;
        const cursor = coll.find({}, { sort: { _id: 1 }, batchSize: 20, projection: { s: 0 } });
        r.cursor = [];
        for await (const d of cursor)
            r.cursor.push(d);
        r.getMores = getMores - before;
        r.aggregate = await coll.aggregate([
            { $match: { g: { $lt: 5 } } },
            { $group: { _id: '$g', total: { $sum: '$n.a' }, docs: { $sum: 1 } } },
            { $sort: { _id: 1 } },
        ], { batchSize: 2 }).toArray();
        const st = await db.admin().command({ connectionStatus: 1 });
        r.users = st.authInfo.authenticatedUsers;
        r.ok = true;
        out(r);
    } catch (e) {
        out(errorOf(e));
    } finally {
        await c.close();
    }
}

async function ping(uri) {
    const c = client(uri);
    try {
        await c.connect();
        await c.db('admin').command({ ping: 1 });
        out({ ok: true });
    } catch (e) {
        out(errorOf(e));
    } finally {
        await c.close();
    }
}

async function set(uri, dbName, coll, id) {
    const c = client(uri);
    try {
        await c.connect();
        const r = await c.db(dbName).collection(coll).updateOne({ _id: JSON.parse(id) }, { $set: { v: 1 } });
        out({ ok: true, matched: r.matchedCount, modified: r.modifiedCount });
    } catch (e) {
        out(errorOf(e));
    } finally {
        await c.close();
    }
}

async function loop(uri, dbName, writers) {
    const c = client(uri, { maxPoolSize: writers });
    await c.connect();
    const coll = c.db(dbName).collection('nodeloop');
    const acked = [];
    const errors = [];
    let stop = false;
    let ready = 0;
    const stopped = new Promise((resolve) => {
        const rl = readline.createInterface({ input: process.stdin });
        rl.on('line', (l) => { if (l.trim() === 'stop') { stop = true; rl.close(); resolve(); } });
        rl.on('close', () => { stop = true; resolve(); });
    });
    async function writer(w) {
        let first = true;
        for (let i = 0; !stop; i++) {
            const id = `w${w}-${i}`;
            try {
                await coll.insertOne({ _id: id, w, i, n: 0 });
                acked.push(id);
                await coll.updateOne({ _id: id }, { $inc: { n: 1 } });
                acked.push(id + '+inc');
            } catch (e) {
                errors.push(Object.assign(errorOf(e), { id }));
            }
            if (first) {
                first = false;
                if (++ready === writers)
                    process.stdout.write('ready\n');
            }
            await new Promise((res) => setTimeout(res, 5));
        }
    }
    const all = [];
    for (let w = 0; w < writers; w++)
        all.push(writer(w));
    await stopped;
    await Promise.all(all);
    await c.close();
    out({ ok: errors.length === 0, acked, errors });
}

async function main() {
    const [mode, uri, db, n, id] = process.argv.slice(2);
    if (mode === 'crud' && db)
        await crud(uri, db);
    else if (mode === 'ping' && uri)
        await ping(uri);
    else if (mode === 'set' && id !== undefined)
        await set(uri, db, n, id);
    else if (mode === 'loop' && db)
        await loop(uri, db, Math.max(1, parseInt(n || '4', 10)));
    else {
        process.stderr.write('usage: sy_node_mongo.js crud URI DB | ping URI | set URI DB COLL ID | loop URI DB WRITERS\n');
        process.exit(2);
    }
}

main().catch((e) => {
    process.stderr.write(String(e && e.stack || e) + '\n');
    process.exit(1);
});
