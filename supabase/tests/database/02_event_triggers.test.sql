-- Each trigger queues the right request, and a webhook that cannot take an event never aborts
-- the user's change.
begin;
create extension if not exists pgtap with schema extensions;
\ir helpers.psql

select plan(50);

select pg_temp.create_user('owner@example.com') as owner \gset
select pg_temp.create_user('friend@example.com') as friend \gset
insert into public.trips (user_id, name, start_date, end_date, destination)
values (:'owner', 'Kyoto in spring', '2027-04-01', '2027-04-10', 'Kyoto, Japan')
returning id as trip \gset

-- The latest attempt logged for an event.
create function pg_temp.last_log(p_event text)
returns public.webhook_logs
language sql
as $$ select * from public.webhook_logs where event_type = p_event order by id desc limit 1 $$;

-- trip_collaborators -----------------------------------------------------------------------------

insert into public.trip_collaborators (trip_id, user_id, added_by, permission_level)
values (:trip, :'friend', :'owner', 'view');
select id as added from pg_temp.last_log('trip.collaborator.added') \gset

select is((select url from pg_temp.queued(:added)),
  (select url from public.webhook_configs where name = 'trip_events'),
  'adding a collaborator posts to the trip_events webhook');
select is((select headers ->> 'Content-Type' from pg_temp.queued(:added)), 'application/json',
  'as JSON');
select is((select headers ->> 'X-Webhook-Event' from pg_temp.queued(:added)), 'trip.collaborator.added',
  'named trip.collaborator.added in X-Webhook-Event');
select is((select headers ->> 'X-Webhook-Attempt' from pg_temp.queued(:added)), '1', 'as attempt 1');
select ok((select headers ->> 'webhook-id' ~ '^msg_[0-9a-f]{32}$' from pg_temp.queued(:added)),
  'with a webhook-id');
select ok((select abs((headers ->> 'webhook-timestamp')::bigint - extract(epoch from clock_timestamp())) < 5
           from pg_temp.queued(:added)), 'a current webhook-timestamp');
select is((select headers ->> 'webhook-signature' from pg_temp.queued(:added)),
  (select public.webhook_signature(c.secret, q.headers ->> 'webhook-id',
     (q.headers ->> 'webhook-timestamp')::bigint, q.body_text)
   from pg_temp.queued(:added) q, public.webhook_configs c where c.name = 'trip_events'),
  'a Standard Webhooks signature of the queued bytes');
select is((select headers ->> 'X-Webhook-Signature' from pg_temp.queued(:added)),
  (select public.webhook_legacy_signature(c.secret, q.body_text)
   from pg_temp.queued(:added) q, public.webhook_configs c where c.name = 'trip_events'),
  'and the legacy signature');
select is((select body - 'timestamp' - 'data' from pg_temp.queued(:added)),
  jsonb_build_object('event', 'trip.collaborator.added', 'trip_id', :trip, 'user_id', :'friend',
    'added_by', :'owner', 'permission_level', 'view', 'operation', 'INSERT'),
  'the body describes the new collaborator');
select is((select body -> 'data' ->> 'id' from pg_temp.queued(:added)),
  (select id::text from public.trip_collaborators where trip_id = :trip),
  'and carries the row as data');

update public.trip_collaborators set updated_at = now() + interval '1 minute' where trip_id = :trip;
select is((select count(*) from public.webhook_logs where event_type = 'trip.collaborator.updated'), 0::bigint,
  'an update that keeps the permission level sends nothing');
update public.trip_collaborators set permission_level = 'edit' where trip_id = :trip;
select id as updated from pg_temp.last_log('trip.collaborator.updated') \gset
select is((select body ->> 'permission_level' || ' from ' || (body ->> 'old_permission_level')
           from pg_temp.queued(:updated)), 'edit from view',
  'a permission change sends trip.collaborator.updated with the old and new level');
select is((select body ->> 'event' from pg_temp.queued(:updated)), 'trip.collaborator.updated',
  'whose body names the event');

delete from public.trip_collaborators where trip_id = :trip;
select id as removed from pg_temp.last_log('trip.collaborator.removed') \gset
select is((select body ->> 'operation' || ' ' || (body ->> 'user_id') from pg_temp.queued(:removed)),
  'DELETE ' || :'friend', 'removing a collaborator sends trip.collaborator.removed');

-- chat_messages ----------------------------------------------------------------------------------

insert into public.chat_sessions (user_id, trip_id) values (:'owner', :trip) returning id as session \gset
insert into public.chat_messages (session_id, role, content)
values (:'session', 'user', 'We want a cheap hostel near the station') returning id as message \gset
select id as processed from pg_temp.last_log('chat.message.process') \gset
select is((select url from pg_temp.queued(:processed)),
  (select url from public.webhook_configs where name = 'ai_processing'),
  'a user''s chat message posts to the ai_processing webhook');
select is((select body ->> 'event' || ': ' || (body -> 'message_ids') from pg_temp.queued(:processed)),
  format('chat.message.process: [%s]', :message), 'naming the message');
select is((select count(*) from public.webhook_logs where event_type = 'chat.message.created'), 0::bigint,
  'a message is sent once, as chat.message.process: chat.message.created is not emitted');
insert into public.chat_messages (session_id, role, content) values (:'session', 'assistant', 'Try Hostel Mitsuwa');
select is((select count(*) from public.webhook_logs where event_type = 'chat.message.process'), 1::bigint,
  'an assistant message is not processed');
insert into public.chat_messages (session_id, role, content)
select :'session', case when n % 3 = 0 then 'assistant' else 'user' end, format('Message %s', n)
from generate_series(1, 300) n;
select is((select count(*) from public.webhook_logs where event_type = 'chat.message.process'), 2::bigint,
  'one statement of 300 messages sends one more event');
select id as statement from pg_temp.last_log('chat.message.process') \gset
select is((select jsonb_array_length(body -> 'message_ids') from pg_temp.queued(:statement)), 200,
  'naming its 200 user messages');

-- flights / accommodations -----------------------------------------------------------------------

insert into public.flights (trip_id, origin, destination, departure_date, price)
values (:trip, 'LIS', 'KIX', '2027-04-01', 850) returning id as flight \gset
select is((select count(*) from public.webhook_logs where event_type like 'booking.%'), 0::bigint,
  'an available flight sends nothing');
update public.flights set booking_status = 'reserved' where id = :flight;
select is((select count(*) from public.webhook_logs where event_type like 'booking.%'), 0::bigint,
  'a reservation sends nothing');
update public.flights set booking_status = 'booked' where id = :flight;
select id as confirmed from pg_temp.last_log('booking.confirmed') \gset
select is((select url from pg_temp.queued(:confirmed)),
  (select url from public.webhook_configs where name = 'trip_events'),
  'booking a flight posts booking.confirmed to trip_events');
select is((select body - 'timestamp' - 'details' from pg_temp.queued(:confirmed)),
  jsonb_build_object('event', 'booking.confirmed', 'booking_type', 'flights', 'booking_id', :flight,
    'trip_id', :trip, 'user_id', :'owner', 'trip_name', 'Kyoto in spring',
    'destination', 'Kyoto, Japan', 'old_status', 'reserved', 'new_status', 'booked'),
  'naming the booking, the trip and its owner');

insert into public.accommodations (trip_id, name, check_in_date, check_out_date, price_per_night,
  total_price, booking_status)
values (:trip, 'Ryokan Sawaya', '2027-04-01', '2027-04-05', 120, 480, 'booked') returning id as stay \gset
select is((select body ->> 'booking_type' || ' ' || (body ->> 'old_status' is null)::text
           from pg_temp.queued((pg_temp.last_log('booking.confirmed')).id)),
  'accommodations true', 'inserting a booked stay sends booking.confirmed');
update public.accommodations set booking_status = 'cancelled' where id = :stay;
select is((select body ->> 'event' || ' ' || (body ->> 'booking_id')
           from pg_temp.queued((pg_temp.last_log('booking.accommodations.cancelled')).id)),
  'booking.accommodations.cancelled ' || :stay, 'cancelling a stay sends booking.accommodations.cancelled');
update public.flights set booking_status = 'cancelled' where id = :flight;
select is((select body ->> 'old_status' from pg_temp.queued((pg_temp.last_log('booking.flights.cancelled')).id)),
  'booked', 'cancelling a flight sends booking.flights.cancelled');
update public.flights set price = 900 where id = :flight;
select is((select count(*) from public.webhook_logs where event_type like 'booking.%'), 4::bigint,
  'other changes to a booking send nothing');

-- calendar sync, embeddings sweep, test webhook --------------------------------------------------

insert into public.itinerary_items (trip_id, title, item_type, start_time, end_time, location)
values (:trip, 'Fushimi Inari', 'activity', '2027-04-02 07:00+09', '2027-04-02 10:00+09', 'Fushimi'),
       (:trip, 'Kaiseki dinner', 'meal', '2027-04-02 19:00+09', null, 'Gion');
select public.sync_to_calendar(:'owner', :trip, 'google') as calendar \gset
select is((select body ->> 'event' || ' ' || (body ->> 'calendar_service') || ' ' || jsonb_array_length(body -> 'items')
           from pg_temp.queued(:calendar)), 'calendar.sync.request google 2',
  'sync_to_calendar sends the itinerary to trip_events');
select is((select body -> 'items' -> 0 ->> 'title' from pg_temp.queued(:calendar)), 'Fushimi Inari',
  'items in start order');
select throws_ok(format('select public.sync_to_calendar(%L, %s)', :'friend', :trip), 'P0002', null,
  'a user with no access to the trip cannot sync it');
select pg_temp.act_as(:'friend');
select throws_ok(format('select public.sync_to_calendar(%L, %s)', :'owner', :trip), '42501', null,
  'a user cannot sync someone else''s calendar');
select pg_temp.act_as_owner();
select set_config('request.jwt.claims', '{"role": "authenticated", "aud": "authenticated"}', true);
select set_config('role', 'authenticated', true);
select throws_ok(format('select public.sync_to_calendar(%L, %s)', :'owner', :trip), '42501',
  'a caller without a user id cannot sync a calendar',
  'an authenticated token without sub cannot sync anyone''s calendar');
select pg_temp.act_as_owner();
select set_config('role', 'authenticated', true);
select throws_ok(format('select public.sync_to_calendar(%L, %s)', :'owner', :trip), '42501',
  'a caller without a user id cannot sync a calendar',
  'nor the authenticated role without claims');
select pg_temp.act_as_owner();
select pg_temp.act_as_anon();
select throws_ok(format('select public.sync_to_calendar(%L, %s)', :'owner', :trip), '42501', null,
  'nor anon');
select pg_temp.act_as_owner();
select pg_temp.act_as_service_role();
select lives_ok(format('select public.sync_to_calendar(%L, %s)', :'owner', :trip),
  'the service role syncs any member''s calendar');
select pg_temp.act_as_owner();

insert into public.memories (user_id, content) values (:'owner', 'Prefers ryokans');
select is(public.enqueue_memory_embeddings(), 1, 'the embedding sweep counts waiting memories');
select is((select url || ' ' || (body ->> 'reason') from pg_temp.queued((pg_temp.last_log('memory.generate.embedding')).id)),
  (select url from public.webhook_configs where name = 'ai_processing') || ' sweep',
  'and fires memory.generate.embedding at ai_processing');

select (public.dispatch_webhook_event('trip.archived', '{}'))[1] as uncatalogued \gset
select is((select status || ': ' || error_message from public.webhook_logs where id = :uncatalogued),
  'skipped: trip.archived is not an emitted event of the event catalog',
  'an event the catalog does not list is logged as skipped, not sent');
select is((select request_id from public.webhook_logs where id = :uncatalogued), null::bigint,
  'and nothing is queued for it');

select public.test_webhook('trip_events') as tested \gset
select is((select (body ->> 'event') || ' ' || (body ->> 'test') from pg_temp.queued(:tested)), 'test.webhook true',
  'test_webhook sends test.webhook even though trip_events does not subscribe to it');

-- A webhook that cannot take an event never aborts the user's change ------------------------------

update public.webhook_configs set is_active = false where name = 'trip_events';
select lives_ok(format($$insert into public.trip_collaborators (trip_id, user_id, added_by)
                         values (%s, %L, %L)$$, :trip, :'friend', :'owner'),
  'adding a collaborator works while trip_events is inactive');
select is((select status || ': ' || error_message from pg_temp.last_log('trip.collaborator.added')),
  'skipped: webhook trip_events is inactive', 'and the skipped delivery is logged');
select is((select request_id from pg_temp.last_log('trip.collaborator.added')), null::bigint,
  'nothing was queued');
update public.webhook_configs set is_active = true, events = array['booking.confirmed'] where name = 'trip_events';
select lives_ok(format($$update public.trip_collaborators set permission_level = 'admin'
                         where trip_id = %s$$, :trip),
  'changing a collaborator works while trip_events is unsubscribed');
select is((select status || ': ' || error_message from pg_temp.last_log('trip.collaborator.updated')),
  'skipped: no webhook is subscribed to trip.collaborator.updated', 'and is logged as skipped');
update public.webhook_configs set events = events || 'trip.collaborator.removed'::text, secret = null
  where name = 'trip_events';
select lives_ok(format('delete from public.trip_collaborators where trip_id = %s', :trip),
  'removing a collaborator works while trip_events has no secret');
select is((select status || ': ' || error_message from pg_temp.last_log('trip.collaborator.removed')),
  'skipped: webhook trip_events has no signing secret', 'and is logged as skipped');
delete from public.webhook_configs where name = 'trip_events';
select lives_ok(format($$insert into public.trip_collaborators (trip_id, user_id, added_by)
                         values (%s, %L, %L)$$, :trip, :'friend', :'owner'),
  'adding a collaborator works with no webhook configured at all');
select is((select count(*) from public.trip_collaborators where trip_id = :trip), 1::bigint,
  'and the collaborator is there');

select * from finish();
rollback;
