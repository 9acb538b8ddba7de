-- The event catalog is the one list of events: every webhook trigger is in it, everything it
-- names exists, the seed's webhooks subscribe to exactly what it routes to each function, and the
-- reference document's event names are settled in it.
begin;
create extension if not exists pgtap with schema extensions;

select plan(8);

select is_empty($$
    select tr.tgrelid::regclass::text || '.' || tr.tgname from pg_trigger tr
    join pg_proc p on p.oid = tr.tgfoid
    where not tr.tgisinternal and p.proname like 'webhook\_%'
      and tr.tgrelid::regclass::text || '.' || tr.tgname not in (
        select split_part(o, ':', 2) from public.event_catalog, unnest(emitted_by) o
        where o like 'trigger:%')$$,
  'every trigger that sends webhooks is an emitter in the catalog');

select is_empty($$select component || ': ' || details from public.verify_automation_setup()
                  where (component like 'trigger:%' or component like 'function:%')
                    and status <> 'ok'$$,
  'every trigger and function the catalog names exists and is enabled');

select is_empty($$
    select o from public.event_catalog, unnest(emitted_by) o
    where o like 'cron:%' and split_part(o, ':', 2) not in (select jobname from cron.job)$$,
  'every job the catalog names is scheduled');

select is((select events from public.webhook_configs where name = 'trip_events'),
  public.catalog_events_of('trip-events'), 'the trip_events webhook takes what the catalog routes there');
select is((select events from public.webhook_configs where name = 'ai_processing'),
  public.catalog_events_of('ai-processing'), 'the ai_processing webhook takes what the catalog routes there');

select set_eq($$select event_type from public.event_catalog where cardinality(emitted_by) = 0$$,
  array['chat.message.created', 'chat.session.started', 'chat.session.ended',
        'booking.flights.booked', 'booking.accommodations.booked',
        'booking.flights.reserved', 'booking.accommodations.reserved'],
  'the events nothing emits are the ones the catalog gives a reason for');

select throws_ok($$insert into public.event_catalog (event_type, function_name, description)
                   values ('trip.archived', 'trip-events', 'no emitter and no reason')$$,
  '23514', null, 'an event must say what emits it or why nothing does');
select throws_ok($$insert into public.event_catalog (event_type, emitted_by, description)
                   values ('trip.archived', '{trigger:trips.webhook_trip_archived}', 'no function')$$,
  '23514', null, 'an emitted event must name the function that handles it');

select * from finish();
rollback;
