-- Local development data: the webhooks of the local stack (`./scripts/start`), active and signed
-- with the local secret that the stack also gives both functions as WEBHOOK_SECRET
-- (local-stack/src/keys.rs). A hosted project configures its own URLs and secret instead; see
-- docs/operations.md#deploying-to-a-hosted-project. ai-processing answers an embedding delivery at
-- once and embeds after the answer; a chat message (with a chat model) may take longer than an
-- event of trip-events, so its requests wait 30 s before they count as timed out.
insert into public.webhook_configs (name, url, secret, events, is_active, timeout_milliseconds)
values
  ('trip_events',
   'http://127.0.0.1:54321/functions/v1/trip-events',
   'whsec_dHJpcHNhZ2UtZWRnZS1sb2NhbC13ZWJob29rLXNlY3JldA==',
   public.catalog_events_of('trip-events'),
   true, 10000),
  ('ai_processing',
   'http://127.0.0.1:54321/functions/v1/ai-processing',
   'whsec_dHJpcHNhZ2UtZWRnZS1sb2NhbC13ZWJob29rLXNlY3JldA==',
   public.catalog_events_of('ai-processing'),
   true, 30000)
on conflict (name) do update set
  url = excluded.url,
  secret = excluded.secret,
  events = excluded.events,
  is_active = excluded.is_active,
  timeout_milliseconds = excluded.timeout_milliseconds;
