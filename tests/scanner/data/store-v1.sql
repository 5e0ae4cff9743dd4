-- A run store written by attt at 7e64ef1, the release before store schema versions: one
-- 'attt scan --check ports' of a one-host inventory, dumped with sqlite3's iterdump().
BEGIN TRANSACTION;
CREATE TABLE findings (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
INSERT INTO "findings" VALUES('20261201T150645Z-e893cf',0,'{"rule_id":"E2E-TELNET","control":"ports.forbidden","check":"ports","policy":"e2e","system":"cong-thong-tin","host":"127.0.133.1","port":null,"status":"fail","severity":"high","title":{"vi":"Không mở Telnet","en":"Telnet is closed"},"message":{"vi":"cổng bị cấm đang mở: 2323","en":"forbidden ports open: 2323"},"evidence":{"observed":[{"port":2323,"service":"3d-nfsd"}],"expected":"closed"},"references":[{"standard":"TT 39/2017/TT-BTTTT","clause":"4.2","confidence":"secondary","url":null}],"remediation":{"vi":"Tắt Telnet.","en":"Turn Telnet off."},"waiver":null}');
INSERT INTO "findings" VALUES('20261201T150645Z-e893cf',1,'{"rule_id":"E2E-DECLARED","control":"ports.declared_reachable","check":"ports","policy":"e2e","system":"cong-thong-tin","host":"127.0.133.1","port":null,"status":"pass","severity":"medium","title":{"vi":"Dịch vụ đã khai báo hoạt động","en":"Declared services answer"},"message":{"vi":"cổng đã khai báo đang mở: 8080","en":"declared ports open: 8080"},"evidence":{"observed":[8080],"expected":"open"},"references":[],"remediation":{"vi":"Kiểm tra dịch vụ.","en":"Check the service."},"waiver":null}');
CREATE TABLE observations (
    run_id TEXT NOT NULL REFERENCES runs(id),
    seq INTEGER NOT NULL,
    system TEXT NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (run_id, seq)
);
INSERT INTO "observations" VALUES('20261201T150645Z-e893cf',0,'cong-thong-tin','{"check":"ports","system":"cong-thong-tin","host":"127.0.133.1","ip":"127.0.133.1","port":null,"status":"ok","error":null,"data":{"scanned":[2323,8080],"open":[{"port":2323,"protocol":"tcp","service":"3d-nfsd","product":"","version":""},{"port":8080,"protocol":"tcp","service":"http-proxy","product":"","version":""}],"scan_type":"connect","service_detection":false,"service_detection_error":null,"nmap_version":"7.93"},"started":"2026-12-01T15:06:45.580574Z","finished":"2026-12-01T15:06:45.614907Z"}');
CREATE TABLE probes (
    run_id TEXT NOT NULL REFERENCES runs(id),
    check_name TEXT NOT NULL,
    system TEXT NOT NULL,
    host TEXT NOT NULL,
    PRIMARY KEY (run_id, check_name, system, host)
);
INSERT INTO "probes" VALUES('20261201T150645Z-e893cf','ports','cong-thong-tin','127.0.133.1');
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    started TEXT NOT NULL,
    status TEXT NOT NULL,
    info TEXT NOT NULL,
    systems TEXT NOT NULL,
    targets TEXT NOT NULL
);
INSERT INTO "runs" VALUES('20261201T150645Z-e893cf','2026-12-01T15:06:45.577209+00:00','complete','{"id":"20261201T150645Z-e893cf","started":"2026-12-01T15:06:45.577209Z","finished":"2026-12-01T15:06:45.615918Z","status":"complete","province":"Hà Tĩnh","scope":["127.0.133.0/24"],"inventory_sha256":"6a0e4e3fc7f5cc70c0a699916c6b6e838ad1fc7fc3c17a161ca84380e0e61660","policies":[{"id":"e2e","version":"1","sha256":"ad1090d180052e08ece3fb465366e2165db4c14025e420b66578da9b76986721","sources":[{"id":"e2e","version":"1","sha256":"1caef5dce21682e6f8b0ea743ff0e9e6d38b78662c46b833802ff00a93693acc","path":"/work/scratch/issue13/old/tests/scanner/e2e/policy.yaml"}]}],"checks":["ports"],"options":{"policies":"/work/scratch/issue13/old/tests/scanner/e2e/policy.yaml","inventory":"v1.yaml"}}','[{"id":"cong-thong-tin","name":"Cổng thông tin","owner":"Sở Khoa học và Công nghệ","level":3,"tags":[],"allowed_ports":null}]','[{"system":{"id":"cong-thong-tin","name":"Cổng thông tin","owner":"Sở Khoa học và Công nghệ","level":3,"tags":[],"allowed_ports":null},"host":{"address":"127.0.133.1","hostname":null,"services":[{"port":8080,"kind":"tcp"}]},"ip":"127.0.133.1"}]');
COMMIT;
