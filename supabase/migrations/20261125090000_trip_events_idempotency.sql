-- What trip-events needs to be idempotent and to write e-mail:
--  * notifications.dedup_key: `<webhook-id>:<user_id>:<type>`, unique, so a retried delivery
--    inserting with ignore-duplicates never makes a second notification;
--  * webhook_receipts: the deliveries a function has completed, so the same webhook-id again is
--    answered `{"duplicate": true}` without doing anything;
--  * get_user_contact(): a user's e-mail address and display name, for the service role only.

alter table public.notifications add column dedup_key text;
alter table public.notifications
  add constraint notifications_dedup_key_key unique (dedup_key);
comment on column public.notifications.dedup_key is
  'Set by the edge functions (<webhook-id>:<user_id>:<type>); null for notifications made elsewhere.';

create table public.webhook_receipts (
  function_name text not null,
  webhook_id text not null,
  event text not null,
  outcome jsonb not null default '{}',
  received_at timestamptz not null default now(),
  primary key (function_name, webhook_id)
);
comment on table public.webhook_receipts is
  'Deliveries an edge function has completed, by Standard Webhooks webhook-id.';
alter table public.webhook_receipts enable row level security;
revoke all on public.webhook_receipts from anon, authenticated;
grant select, insert, delete on public.webhook_receipts to service_role;

create function public.get_user_contact(p_user_id uuid)
returns table (email text, display_name text)
language sql
stable
security definer
set search_path = ''
as $$
  select u.email::text,
         coalesce(nullif(trim(u.raw_user_meta_data ->> 'full_name'), ''),
                  nullif(trim(u.raw_user_meta_data ->> 'name'), ''),
                  split_part(u.email::text, '@', 1))
  from auth.users u
  where u.id = p_user_id
$$;
comment on function public.get_user_contact(uuid) is
  'E-mail address and display name of a user, for the edge functions (service role only).';
revoke execute on function public.get_user_contact(uuid) from public, anon, authenticated;
grant execute on function public.get_user_contact(uuid) to service_role;

-- Receipts are kept as long as the delivery history.
select cron.schedule('cleanup-delivery-history', '30 2 * * *', $$
  delete from public.webhook_logs
  where status in ('succeeded', 'skipped', 'retried', 'replayed')
    and created_at < now() - interval '30 days';
  delete from public.webhook_receipts where received_at < now() - interval '30 days';
  delete from cron.job_run_details where end_time < now() - interval '7 days';
$$);
