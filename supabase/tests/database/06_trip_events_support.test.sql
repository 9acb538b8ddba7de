-- What trip-events relies on for idempotency and e-mail: the unique notifications.dedup_key,
-- webhook_receipts for the service role only, and get_user_contact() and invitation_context() for
-- the service role only.
begin;
create extension if not exists pgtap with schema extensions;
\ir helpers.psql

select plan(15);

select pg_temp.create_user('ada@example.com') as ada \gset
update auth.users set raw_user_meta_data = '{"full_name": "Ada Lovelace"}' where id = :'ada';
select pg_temp.create_user('grace.hopper@example.com') as grace \gset

-- notifications.dedup_key ------------------------------------------------------------------------
select pg_temp.act_as_service_role();
select lives_ok(format($$insert into public.notifications (user_id, type, title, message, dedup_key)
                         values (%L, 'trip_collaboration_invite', 't', 'm', 'msg_1:u:invite')$$, :'ada'),
  'a notification with a dedup key is inserted');
select throws_ok(format($$insert into public.notifications (user_id, type, title, message, dedup_key)
                          values (%L, 'trip_collaboration_invite', 't', 'm', 'msg_1:u:invite')$$, :'ada'),
  '23505', null, 'the same dedup key twice is refused');
select lives_ok(format($$insert into public.notifications (user_id, type, title, message, dedup_key)
                         values (%L, 'trip_collaboration_invite', 't', 'm', 'msg_1:u:invite')
                         on conflict (dedup_key) do nothing$$, :'ada'),
  'and ignored with on conflict do nothing, as PostgREST ignore-duplicates does');
select lives_ok(format($$insert into public.notifications (user_id, type, title, message)
                         values (%L, 'system', 't', 'm'), (%L, 'system', 't', 'm')$$, :'ada', :'ada'),
  'notifications without a dedup key are not constrained');
select pg_temp.act_as_owner();
select is((select count(*) from public.notifications where dedup_key = 'msg_1:u:invite'), 1::bigint,
  'one notification per dedup key');

-- webhook_receipts -------------------------------------------------------------------------------
select pg_temp.act_as_service_role();
select lives_ok($$insert into public.webhook_receipts (function_name, webhook_id, event)
                  values ('trip-events', 'msg_1', 'trip.collaborator.added')$$,
  'the service role records a receipt');
select throws_ok($$insert into public.webhook_receipts (function_name, webhook_id, event)
                   values ('trip-events', 'msg_1', 'trip.collaborator.added')$$,
  '23505', null, 'one receipt per function and webhook-id');
select pg_temp.act_as(:'ada');
select throws_ok($$select * from public.webhook_receipts$$, '42501', null,
  'users cannot read receipts');

-- get_user_contact -------------------------------------------------------------------------------
select pg_temp.act_as_service_role();
select results_eq(format($$select email, display_name from public.get_user_contact(%L)$$, :'ada'),
  $$values ('ada@example.com', 'Ada Lovelace')$$,
  'the service role reads a user''s address and full name');
select results_eq(format($$select email, display_name from public.get_user_contact(%L)$$, :'grace'),
  $$values ('grace.hopper@example.com', 'grace.hopper')$$,
  'without a name in the metadata the display name is the address''s local part');
select pg_temp.act_as(:'grace');
select throws_ok(format($$select * from public.get_user_contact(%L)$$, :'ada'), '42501', null,
  'users cannot look up addresses');

-- invitation_context -----------------------------------------------------------------------------
select pg_temp.act_as_owner();
insert into public.trips (user_id, name, destination, start_date, end_date)
values (:'ada', 'Kyoto', 'Kyoto, Japan', '2027-04-01', '2027-04-05') returning id as trip \gset
insert into public.trip_collaborators (trip_id, user_id, added_by, permission_level)
values (:trip, :'grace', :'ada', 'edit');
select pg_temp.act_as_service_role();
select is(public.invitation_context(:trip, :'grace', :'ada'), jsonb_build_object(
    'trip', jsonb_build_object('id', :trip, 'name', 'Kyoto', 'destination', 'Kyoto, Japan', 'user_id', :'ada'),
    'permission_level', 'edit',
    'inviter', jsonb_build_object('email', 'ada@example.com', 'display_name', 'Ada Lovelace'),
    'invitee', jsonb_build_object('email', 'grace.hopper@example.com', 'display_name', 'grace.hopper')),
  'an invitation''s trip, level and both people in one call');
select is(public.invitation_context(:trip, :'ada', :'ada') -> 'permission_level', 'null'::jsonb,
  'no level for someone who is not a collaborator');
select is(public.invitation_context(-1, :'grace', :'ada') -> 'trip', 'null'::jsonb,
  'no trip for one that is gone');
select pg_temp.act_as(:'grace');
select throws_ok(format($$select public.invitation_context(%s, %L, %L)$$, :trip, :'grace', :'ada'),
  '42501', null, 'users cannot call it');

select * from finish();
rollback;
