-- A run store written by attt at 8b88282, store schema 3 (PRAGMA user_version 3), the last
-- before Alembic: one complete run (its findings' rule texts kept once) and one notification,
-- dumped with sqlite3's iterdump().
PRAGMA user_version=3;
BEGIN TRANSACTION;
CREATE TABLE findings (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
INSERT INTO "findings" VALUES('20261130T010000Z-c0ffee',0,'{"rule_id": "RULE-000", "control": "tls.protocols_disabled", "check": "tls", "policy": "vn-level-3", "system": "sys-0000", "host": "127.0.0.1", "port": 443, "status": "pass", "severity": "info", "message": {"vi": "", "en": ""}, "evidence": {}, "waiver": null, "kind": "rule", "blocked": [], "rule_text": "2dcc7ef2979f8c6c3a54490d3556bf42"}');
INSERT INTO "findings" VALUES('20261130T010000Z-c0ffee',1,'{"rule_id": "RULE-001", "control": "tls.protocols_disabled", "check": "tls", "policy": "vn-level-3", "system": "sys-0000", "host": "127.0.0.2", "port": 443, "status": "pass", "severity": "low", "message": {"vi": "", "en": ""}, "evidence": {}, "waiver": null, "kind": "rule", "blocked": [], "rule_text": "814c0d2c0256e162b38753fb6ef5eeca"}');
INSERT INTO "findings" VALUES('20261130T010000Z-c0ffee',2,'{"rule_id": "RULE-000", "control": "tls.protocols_disabled", "check": "tls", "policy": "vn-level-3", "system": "sys-0001", "host": "127.0.1.1", "port": 443, "status": "pass", "severity": "info", "message": {"vi": "", "en": ""}, "evidence": {}, "waiver": null, "kind": "rule", "blocked": [], "rule_text": "2dcc7ef2979f8c6c3a54490d3556bf42"}');
INSERT INTO "findings" VALUES('20261130T010000Z-c0ffee',3,'{"rule_id": "RULE-001", "control": "tls.protocols_disabled", "check": "tls", "policy": "vn-level-3", "system": "sys-0001", "host": "127.0.1.2", "port": 443, "status": "pass", "severity": "low", "message": {"vi": "", "en": ""}, "evidence": {}, "waiver": null, "kind": "rule", "blocked": [], "rule_text": "814c0d2c0256e162b38753fb6ef5eeca"}');
CREATE TABLE notifications (
        run_id TEXT NOT NULL REFERENCES runs(id),
        channel TEXT NOT NULL,
        recipient TEXT NOT NULL,
        status TEXT NOT NULL,
        attempts INTEGER NOT NULL,
        detail TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (run_id, channel, recipient)
    );
INSERT INTO "notifications" VALUES('20261130T010000Z-c0ffee','email','so-1@example.invalid','sent',1,'250 ok','2026-11-20T01:07:12+00:00');
CREATE TABLE observations (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    system TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
INSERT INTO "observations" VALUES('20261130T010000Z-c0ffee',0,'sys-0000','{"check":"tls","system":"sys-0000","host":"127.0.0.1","ip":"127.0.0.1","port":443,"status":"ok","error":null,"data":{"protocols":["TLSv1.2","TLSv1.3"]},"started":"2026-11-20T01:00:00Z","finished":"2026-11-20T01:00:03Z"}');
INSERT INTO "observations" VALUES('20261130T010000Z-c0ffee',1,'sys-0000','{"check":"tls","system":"sys-0000","host":"127.0.0.2","ip":"127.0.0.2","port":443,"status":"ok","error":null,"data":{"protocols":["TLSv1.2","TLSv1.3"]},"started":"2026-11-20T01:00:00Z","finished":"2026-11-20T01:00:03Z"}');
INSERT INTO "observations" VALUES('20261130T010000Z-c0ffee',2,'sys-0000','{"check":"ssh","system":"sys-0000","host":"127.0.0.1","ip":"127.0.0.1","port":22,"status":"error","error":"timed out","data":null,"started":null,"finished":null}');
INSERT INTO "observations" VALUES('20261130T010000Z-c0ffee',3,'sys-0001','{"check":"tls","system":"sys-0001","host":"127.0.1.1","ip":"127.0.1.1","port":443,"status":"ok","error":null,"data":{"protocols":["TLSv1.2","TLSv1.3"]},"started":"2026-11-20T01:00:00Z","finished":"2026-11-20T01:00:03Z"}');
INSERT INTO "observations" VALUES('20261130T010000Z-c0ffee',4,'sys-0001','{"check":"tls","system":"sys-0001","host":"127.0.1.2","ip":"127.0.1.2","port":443,"status":"ok","error":null,"data":{"protocols":["TLSv1.2","TLSv1.3"]},"started":"2026-11-20T01:00:00Z","finished":"2026-11-20T01:00:03Z"}');
CREATE TABLE probes (
    run_id TEXT NOT NULL REFERENCES runs(id),
    check_name TEXT NOT NULL,
    system TEXT NOT NULL,
    host TEXT NOT NULL,
    PRIMARY KEY (run_id, check_name, system, host)
);
INSERT INTO "probes" VALUES('20261130T010000Z-c0ffee','tls','sys-0000','127.0.0.1');
INSERT INTO "probes" VALUES('20261130T010000Z-c0ffee','tls','sys-0000','127.0.0.2');
INSERT INTO "probes" VALUES('20261130T010000Z-c0ffee','ssh','sys-0000','127.0.0.1');
INSERT INTO "probes" VALUES('20261130T010000Z-c0ffee','tls','sys-0001','127.0.1.1');
INSERT INTO "probes" VALUES('20261130T010000Z-c0ffee','tls','sys-0001','127.0.1.2');
CREATE TABLE rule_texts (
        key TEXT PRIMARY KEY,
        body TEXT NOT NULL
    );
INSERT INTO "rule_texts" VALUES('2dcc7ef2979f8c6c3a54490d3556bf42','{"references": [{"clause": "7.2.3.4", "confidence": "unverified", "levels": null, "standard": "TCVN 11930:2017", "url": null}, {"clause": "4.2", "confidence": "verified", "levels": null, "standard": "TT 39/2017/TT-BTTTT", "url": null}], "remediation": {"en": "Enable only TLS 1.2 and TLS 1.3.", "vi": "Chỉ bật TLS 1.2 và TLS 1.3."}, "title": {"en": "Rule RULE-000", "vi": "Quy tắc RULE-000"}}');
INSERT INTO "rule_texts" VALUES('814c0d2c0256e162b38753fb6ef5eeca','{"references": [{"clause": "7.2.3.4", "confidence": "unverified", "levels": null, "standard": "TCVN 11930:2017", "url": null}, {"clause": "4.2", "confidence": "verified", "levels": null, "standard": "TT 39/2017/TT-BTTTT", "url": null}], "remediation": {"en": "Enable only TLS 1.2 and TLS 1.3.", "vi": "Chỉ bật TLS 1.2 và TLS 1.3."}, "title": {"en": "Rule RULE-001", "vi": "Quy tắc RULE-001"}}');
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    status TEXT NOT NULL,
    info TEXT NOT NULL,
    systems TEXT NOT NULL,
    targets TEXT NOT NULL
, lease_pid INTEGER, lease_host TEXT, heartbeat TEXT, inventory TEXT);
INSERT INTO "runs" VALUES('20261130T010000Z-c0ffee','2026-11-20T01:00:00+00:00','complete','{"id":"20261130T010000Z-c0ffee","started":"2026-11-20T01:00:00Z","finished":"2026-11-20T01:07:12Z","status":"complete","province":"Hà Tĩnh","scope":["127.0.0.0/8"],"inventory_sha256":"aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa","policies":[{"id":"vn-level-3","version":"2026.1","sha256":"bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb","sources":[{"id":"vn-level-3","version":"2026.1","sha256":"cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc","path":"policies/vn-level-3.yaml"}]}],"checks":["ports","tls","ssh"],"options":{},"owners":[],"judged_by":{}}','[{"id":"sys-0000","name":"Hệ thống thông tin số 0","owner":"Sở số 1","level":1,"tags":["internet-facing"],"allowed_ports":null,"level_decision":null,"role":null},{"id":"sys-0001","name":"Hệ thống thông tin số 1","owner":"Sở số 1","level":2,"tags":["internet-facing"],"allowed_ports":null,"level_decision":null,"role":null}]','[{"system":{"id":"sys-0000","name":"Hệ thống thông tin số 0","owner":"Sở số 1","level":1,"tags":["internet-facing"],"allowed_ports":null,"level_decision":null,"role":null},"host":{"address":"127.0.0.1","hostname":null,"services":[{"port":443,"kind":"tls"}]},"ip":"127.0.0.1"},{"system":{"id":"sys-0000","name":"Hệ thống thông tin số 0","owner":"Sở số 1","level":1,"tags":["internet-facing"],"allowed_ports":null,"level_decision":null,"role":null},"host":{"address":"127.0.0.2","hostname":null,"services":[{"port":443,"kind":"tls"}]},"ip":"127.0.0.2"},{"system":{"id":"sys-0001","name":"Hệ thống thông tin số 1","owner":"Sở số 1","level":2,"tags":["internet-facing"],"allowed_ports":null,"level_decision":null,"role":null},"host":{"address":"127.0.1.1","hostname":null,"services":[{"port":443,"kind":"tls"}]},"ip":"127.0.1.1"},{"system":{"id":"sys-0001","name":"Hệ thống thông tin số 1","owner":"Sở số 1","level":2,"tags":["internet-facing"],"allowed_ports":null,"level_decision":null,"role":null},"host":{"address":"127.0.1.2","hostname":null,"services":[{"port":443,"kind":"tls"}]},"ip":"127.0.1.2"}]',NULL,'gone',NULL,'/srv/attt/inventory.yaml');
COMMIT;
