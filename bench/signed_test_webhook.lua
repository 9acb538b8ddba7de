-- B1 of scripts/bench, the accepted path: every request is a `test.webhook` delivery whose
-- Standard Webhooks signature is right. scripts/bench signs it just before the run (the body,
-- id and timestamp below, with the benchmark's secret) and passes the signature in SIGNATURE;
-- the timestamp stays within the functions' 300 s tolerance for the whole run.
wrk.method = "POST"
wrk.body = os.getenv("BODY")
wrk.headers["Content-Type"] = "application/json"
wrk.headers["webhook-id"] = "msg_bench_test_webhook"
wrk.headers["webhook-timestamp"] = os.getenv("TIMESTAMP")
wrk.headers["webhook-signature"] = os.getenv("SIGNATURE")
