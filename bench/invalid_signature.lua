-- B1 of scripts/bench: every request is a trip-events delivery whose Standard Webhooks signature
-- is wrong (a well-formed v1 MAC of other bytes), with a current timestamp, so the function
-- computes the HMAC of the body before answering 401.
wrk.method = "POST"
wrk.body = '{"event":"trip.collaborator.added","trip_id":42,'
  .. '"user_id":"8d0c2a8e-3f1b-4c57-9a0e-2b6f5d1c7e94",'
  .. '"added_by":"1f3e5a7c-9b2d-4e6f-8a1c-3d5e7f9a1b2c","permission_level":"edit"}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["webhook-id"] = "msg_bench_invalid_signature"
wrk.headers["webhook-timestamp"] = tostring(os.time())
wrk.headers["webhook-signature"] = "v1,K5oZfzN95Z9UVu1EsfQmfVNQhnkZ2pj9o9NDN/H/pI4="
