-- Row level security on trips and trip_collaborators, as every kind of actor: the trip owner, a
-- collaborator with admin, edit and view rights, a signed-in stranger, anon and service_role.
-- Denied reads return no rows, denied inserts raise 42501, denied updates and deletes silently
-- touch nothing (checked afterwards as the database owner).
begin;
create extension if not exists pgtap with schema extensions;
\ir helpers.psql

select plan(74);

select pg_temp.create_user('owner@example.com') as owner \gset
select pg_temp.create_user('admin@example.com') as admin \gset
select pg_temp.create_user('editor@example.com') as editor \gset
select pg_temp.create_user('viewer@example.com') as viewer \gset
select pg_temp.create_user('stranger@example.com') as stranger \gset
select pg_temp.create_user('alice@example.com') as alice \gset
select pg_temp.create_user('bob@example.com') as bob \gset
select pg_temp.create_user('carol@example.com') as carol \gset

insert into public.trips (user_id, name, start_date, end_date, destination)
values (:'owner', 'Kyoto in spring', '2027-04-01', '2027-04-10', 'Kyoto, Japan')
returning id as trip \gset
insert into public.trips (user_id, name, start_date, end_date, destination)
values (:'stranger', 'Lisbon weekend', '2027-05-01', '2027-05-03', 'Lisbon, Portugal')
returning id as strangers_trip \gset
insert into public.trip_collaborators (trip_id, user_id, added_by, permission_level)
values (:trip, :'admin', :'owner', 'admin'),
       (:trip, :'editor', :'owner', 'edit'),
       (:trip, :'viewer', :'owner', 'view');

-- trips: select ----------------------------------------------------------------------------------

select pg_temp.act_as(:'owner');
select results_eq(format('select name from public.trips where id = %s', :trip),
  array['Kyoto in spring'], 'the owner sees their trip');
select is_empty(format('select id from public.trips where id = %s', :strangers_trip),
  'the owner does not see a trip of someone else');
select pg_temp.act_as(:'admin');
select results_eq(format('select name from public.trips where id = %s', :trip),
  array['Kyoto in spring'], 'an admin collaborator sees the trip');
select pg_temp.act_as(:'editor');
select results_eq(format('select name from public.trips where id = %s', :trip),
  array['Kyoto in spring'], 'an edit collaborator sees the trip');
select pg_temp.act_as(:'viewer');
select results_eq('select name from public.trips',
  array['Kyoto in spring'], 'a view collaborator sees the trip, and only that one');
select pg_temp.act_as(:'stranger');
select results_eq('select name from public.trips',
  array['Lisbon weekend'], 'a stranger sees only their own trip, not the owner''s');
select pg_temp.act_as_anon();
select is_empty('select id from public.trips', 'anon sees no trips');
select pg_temp.act_as_service_role();
select results_eq(format('select count(*) from public.trips where id in (%s, %s)', :trip, :strangers_trip),
  array[2::bigint], 'service_role sees every trip');

-- trips: insert ----------------------------------------------------------------------------------

select pg_temp.act_as(:'alice');
select lives_ok(format($$insert into public.trips (user_id, name, start_date, end_date, destination)
                         values (%L, 'Alice abroad', '2027-06-01', '2027-06-05', 'Porto')$$, :'alice'),
  'a user creates a trip of their own');
select lives_ok(format($$insert into public.trips (user_id, name, start_date, end_date, destination)
                         values (%L, 'Alice returns', '2027-07-01', '2027-07-05', 'Braga') returning id$$, :'alice'),
  'a user creates a trip and reads it back in the same statement (PostgREST return=representation)');
select throws_ok(format($$insert into public.trips (user_id, name, start_date, end_date, destination)
                          values (%L, 'Planted trip', '2027-06-01', '2027-06-05', 'Porto')$$, :'owner'),
  '42501', null, 'a user cannot create a trip owned by someone else');
select pg_temp.act_as_anon();
select throws_ok(format($$insert into public.trips (user_id, name, start_date, end_date, destination)
                          values (%L, 'Anonymous trip', '2027-06-01', '2027-06-05', 'Porto')$$, :'owner'),
  '42501', null, 'anon cannot create a trip');
select pg_temp.act_as_service_role();
select lives_ok(format($$insert into public.trips (user_id, name, start_date, end_date, destination)
                         values (%L, 'Made by the backend', '2027-06-01', '2027-06-05', 'Porto')$$, :'bob'),
  'service_role creates a trip for any user');
select pg_temp.act_as_owner();
select results_eq(
  format($$select user_id::text || ' ' || name from public.trips where name in ('Alice abroad', 'Made by the backend')
           order by name$$),
  array[:'alice' || ' Alice abroad', :'bob' || ' Made by the backend'],
  'and both trips belong to the right users');

-- trips: update ----------------------------------------------------------------------------------

select pg_temp.act_as(:'owner');
update public.trips set name = 'Kyoto by the owner' where id = :trip;
select pg_temp.act_as_owner();
select is((select name from public.trips where id = :trip), 'Kyoto by the owner', 'the owner updates their trip');

select pg_temp.act_as(:'admin');
update public.trips set name = 'Kyoto by the admin' where id = :trip;
select pg_temp.act_as_owner();
select is((select name from public.trips where id = :trip), 'Kyoto by the admin', 'an admin collaborator updates the trip');

select pg_temp.act_as(:'editor');
update public.trips set name = 'Kyoto by the editor' where id = :trip;
select pg_temp.act_as_owner();
select is((select name from public.trips where id = :trip), 'Kyoto by the editor', 'an edit collaborator updates the trip');

select pg_temp.act_as(:'viewer');
update public.trips set name = 'Kyoto by the viewer' where id = :trip;
select pg_temp.act_as_owner();
select is((select name from public.trips where id = :trip), 'Kyoto by the editor', 'a view collaborator cannot update the trip');

select pg_temp.act_as(:'stranger');
update public.trips set name = 'Kyoto by a stranger' where id = :trip;
select pg_temp.act_as_owner();
select is((select name from public.trips where id = :trip), 'Kyoto by the editor', 'a stranger cannot update the trip');

select pg_temp.act_as_anon();
update public.trips set name = 'Kyoto by anon';
select pg_temp.act_as_owner();
select is((select name from public.trips where id = :trip), 'Kyoto by the editor', 'anon cannot update a trip');

select pg_temp.act_as_service_role();
update public.trips set name = 'Kyoto by the backend' where id = :trip;
select pg_temp.act_as_owner();
select is((select name from public.trips where id = :trip), 'Kyoto by the backend', 'service_role updates any trip');

-- trips: only the owner transfers a trip (guard_trip_owner) ---------------------------------------

select pg_temp.act_as(:'editor');
select throws_ok(format('update public.trips set user_id = %L where id = %s', :'editor', :trip),
  '42501', format('only the owner of trip %s can transfer it', :trip),
  'an edit collaborator cannot take over the trip');
select pg_temp.act_as(:'admin');
select throws_ok(format('update public.trips set user_id = %L where id = %s', :'admin', :trip),
  '42501', format('only the owner of trip %s can transfer it', :trip),
  'an admin collaborator cannot take over the trip');
select throws_ok(format('update public.trips set user_id = %L where id = %s', :'stranger', :trip),
  '42501', format('only the owner of trip %s can transfer it', :trip),
  'an admin collaborator cannot hand the trip to someone else');
select pg_temp.act_as(:'viewer');
update public.trips set user_id = :'viewer' where id = :trip;
select pg_temp.act_as(:'stranger');
update public.trips set user_id = :'stranger' where id = :trip;
select pg_temp.act_as_owner();
select is((select user_id from public.trips where id = :trip), :'owner'::uuid,
  'neither a view collaborator nor a stranger can take over the trip');

insert into public.trips (user_id, name, start_date, end_date, destination)
values (:'owner', 'Gift trip', '2027-07-01', '2027-07-03', 'Nara') returning id as gift \gset
select pg_temp.act_as(:'owner');
update public.trips set user_id = :'alice' where id = :gift;
select pg_temp.act_as_owner();
select is((select user_id from public.trips where id = :gift), :'alice'::uuid, 'the owner transfers their trip');
select pg_temp.act_as(:'owner');
select is_empty(format('select id from public.trips where id = %s', :gift),
  'and no longer sees it once it is someone else''s');
select pg_temp.act_as_service_role();
update public.trips set user_id = :'bob' where id = :gift;
select pg_temp.act_as_owner();
select is((select user_id from public.trips where id = :gift), :'bob'::uuid, 'service_role transfers any trip');

-- trips: delete ----------------------------------------------------------------------------------

select pg_temp.act_as(:'admin');
delete from public.trips where id = :trip;
select pg_temp.act_as(:'editor');
delete from public.trips where id = :trip;
select pg_temp.act_as_owner();
select is((select count(*) from public.trips where id = :trip), 1::bigint,
  'neither an admin nor an edit collaborator can delete the trip');
select pg_temp.act_as(:'viewer');
delete from public.trips where id = :trip;
select pg_temp.act_as_owner();
select is((select count(*) from public.trips where id = :trip), 1::bigint, 'a view collaborator cannot delete the trip');
select pg_temp.act_as(:'stranger');
delete from public.trips where id = :trip;
select pg_temp.act_as_owner();
select is((select count(*) from public.trips where id = :trip), 1::bigint, 'a stranger cannot delete the trip');
select pg_temp.act_as_anon();
delete from public.trips;
select pg_temp.act_as_owner();
select is((select count(*) from public.trips where id in (:trip, :strangers_trip)), 2::bigint, 'anon cannot delete trips');

insert into public.trips (user_id, name, start_date, end_date, destination)
values (:'owner', 'Cancelled trip', '2027-08-01', '2027-08-03', 'Osaka') returning id as doomed \gset
select pg_temp.act_as(:'owner');
delete from public.trips where id = :doomed;
select pg_temp.act_as_owner();
select is((select count(*) from public.trips where id = :doomed), 0::bigint, 'the owner deletes their trip');
select pg_temp.act_as_service_role();
delete from public.trips where id = :gift;
select pg_temp.act_as_owner();
select is((select count(*) from public.trips where id = :gift), 0::bigint, 'service_role deletes any trip');

-- trip_collaborators: select ---------------------------------------------------------------------

-- The collaborator list as one sorted text value of "user level" pairs.
select array_agg(u || ' ' || l order by u || ' ' || l)::text as members
from (values (:'admin', 'admin'), (:'editor', 'edit'), (:'viewer', 'view')) v (u, l) \gset
\set list_collaborators 'select array_agg(user_id::text || '' '' || permission_level order by user_id::text || '' '' || permission_level)::text from public.trip_collaborators where trip_id = '

select pg_temp.act_as(:'owner');
select results_eq(:'list_collaborators' || :trip, array[:'members'], 'the owner sees every collaborator');
select pg_temp.act_as(:'admin');
select results_eq(:'list_collaborators' || :trip, array[:'members'], 'an admin collaborator sees every collaborator');
select pg_temp.act_as(:'editor');
select results_eq(:'list_collaborators' || :trip, array[:'members'], 'an edit collaborator sees every collaborator');
select pg_temp.act_as(:'viewer');
select results_eq(:'list_collaborators' || :trip, array[:'members'], 'a view collaborator sees every collaborator');
select pg_temp.act_as(:'stranger');
select is_empty(format('select id from public.trip_collaborators where trip_id = %s', :trip),
  'a stranger sees none of the collaborators');
select pg_temp.act_as_anon();
select is_empty('select id from public.trip_collaborators', 'anon sees no collaborators');
select pg_temp.act_as_service_role();
select results_eq(:'list_collaborators' || :trip, array[:'members'], 'service_role sees every collaborator');

-- trip_collaborators: insert ---------------------------------------------------------------------

\set add_collaborator 'insert into public.trip_collaborators (trip_id, user_id, added_by, permission_level) values (%s, %L, %L, %L)'

select pg_temp.act_as(:'owner');
select lives_ok(format(:'add_collaborator', :trip, :'alice', :'owner', 'view'),
  'the owner adds a collaborator, recording themselves as added_by');
select throws_ok(format(:'add_collaborator', :trip, :'bob', :'admin', 'view'),
  '42501', null, 'the owner cannot record someone else as added_by');
select throws_ok(format(:'add_collaborator', :trip, :'owner', :'owner', 'admin'),
  '42501', null, 'the owner cannot add themselves as a collaborator');
select pg_temp.act_as(:'admin');
select lives_ok(format(:'add_collaborator', :trip, :'bob', :'admin', 'view'),
  'an admin collaborator adds a collaborator, recording themselves as added_by');
select throws_ok(format(:'add_collaborator', :trip, :'carol', :'owner', 'view'),
  '42501', null, 'an admin collaborator cannot record the owner as added_by');
select throws_ok(format(:'add_collaborator', :trip, :'owner', :'admin', 'view'),
  '42501', null, 'an admin collaborator cannot add the trip owner as a collaborator');
select throws_ok(format(:'add_collaborator', :strangers_trip, :'admin', :'admin', 'admin'),
  '42501', null, 'an admin collaborator cannot add collaborators to another trip');
select pg_temp.act_as(:'editor');
select throws_ok(format(:'add_collaborator', :trip, :'carol', :'editor', 'view'),
  '42501', null, 'an edit collaborator cannot add a collaborator');
select pg_temp.act_as(:'viewer');
select throws_ok(format(:'add_collaborator', :trip, :'carol', :'viewer', 'view'),
  '42501', null, 'a view collaborator cannot add a collaborator');
select pg_temp.act_as(:'stranger');
select throws_ok(format(:'add_collaborator', :trip, :'stranger', :'stranger', 'admin'),
  '42501', null, 'a stranger cannot add themselves to the trip');
select pg_temp.act_as_anon();
select throws_ok(format(:'add_collaborator', :trip, :'carol', :'owner', 'view'),
  '42501', null, 'anon cannot add a collaborator');
select pg_temp.act_as_service_role();
select lives_ok(format(:'add_collaborator', :trip, :'carol', :'owner', 'view'),
  'service_role adds a collaborator');
select pg_temp.act_as_owner();
select results_eq(
  format($$select user_id::text || ' added by ' || added_by::text from public.trip_collaborators
           where trip_id = %s and user_id in (%L, %L, %L, %L, %L) order by added_at, id$$,
         :trip, :'alice', :'bob', :'carol', :'owner', :'stranger'),
  array[:'alice' || ' added by ' || :'owner', :'bob' || ' added by ' || :'admin',
        :'carol' || ' added by ' || :'owner'],
  'exactly the allowed collaborators were added');

-- trip_collaborators: update ---------------------------------------------------------------------

\set level_of 'select permission_level from public.trip_collaborators where trip_id = %s and user_id = %L'

select pg_temp.act_as(:'owner');
update public.trip_collaborators set permission_level = 'edit' where trip_id = :trip and user_id = :'alice';
select pg_temp.act_as_owner();
select results_eq(format(:'level_of', :trip, :'alice'), array['edit'], 'the owner changes a collaborator''s level');

select pg_temp.act_as(:'admin');
update public.trip_collaborators set permission_level = 'edit' where trip_id = :trip and user_id = :'bob';
select pg_temp.act_as_owner();
select results_eq(format(:'level_of', :trip, :'bob'), array['edit'], 'an admin collaborator changes a collaborator''s level');

select pg_temp.act_as(:'editor');
update public.trip_collaborators set permission_level = 'admin' where trip_id = :trip and user_id = :'editor';
update public.trip_collaborators set permission_level = 'view' where trip_id = :trip and user_id = :'bob';
select pg_temp.act_as_owner();
select results_eq(
  format($$select permission_level from public.trip_collaborators where trip_id = %s and user_id in (%L, %L)
           order by user_id = %L desc$$, :trip, :'editor', :'bob', :'editor'),
  array['edit', 'edit'], 'an edit collaborator can neither promote themselves nor change others');

select pg_temp.act_as(:'viewer');
update public.trip_collaborators set permission_level = 'admin' where trip_id = :trip;
select pg_temp.act_as_owner();
select results_eq(format(:'level_of', :trip, :'viewer'), array['view'], 'a view collaborator cannot promote themselves');

select pg_temp.act_as(:'stranger');
update public.trip_collaborators set permission_level = 'view' where trip_id = :trip;
select pg_temp.act_as_owner();
select results_eq(format(:'level_of', :trip, :'admin'), array['admin'], 'a stranger cannot change collaborators');

select pg_temp.act_as_anon();
select throws_ok($$update public.trip_collaborators set permission_level = 'view'$$, '42501', null,
  'anon cannot change collaborators');
select pg_temp.act_as_owner();

select pg_temp.act_as_service_role();
update public.trip_collaborators set permission_level = 'admin' where trip_id = :trip and user_id = :'carol';
select pg_temp.act_as_owner();
select results_eq(format(:'level_of', :trip, :'carol'), array['admin'], 'service_role changes any collaborator');

-- trip_collaborators: delete ---------------------------------------------------------------------

\set collaborator_count 'select count(*) from public.trip_collaborators where trip_id = '

select pg_temp.act_as(:'viewer');
delete from public.trip_collaborators where trip_id = :trip and user_id <> :'viewer';
select pg_temp.act_as(:'editor');
delete from public.trip_collaborators where trip_id = :trip and user_id <> :'editor';
select pg_temp.act_as_owner();
select results_eq(:'collaborator_count' || :trip, array[6::bigint],
  'neither a view nor an edit collaborator can remove someone else');
select pg_temp.act_as(:'stranger');
delete from public.trip_collaborators where trip_id = :trip;
select pg_temp.act_as_owner();
select results_eq(:'collaborator_count' || :trip, array[6::bigint], 'a stranger cannot remove collaborators');
select pg_temp.act_as_anon();
delete from public.trip_collaborators;
select pg_temp.act_as_owner();
select results_eq(:'collaborator_count' || :trip, array[6::bigint], 'anon cannot remove collaborators');

select pg_temp.act_as(:'admin');
delete from public.trip_collaborators where trip_id = :trip and user_id = :'bob';
select pg_temp.act_as_owner();
select is_empty(format($$select id from public.trip_collaborators where trip_id = %s and user_id = %L$$, :trip, :'bob'),
  'an admin collaborator removes a collaborator');
select pg_temp.act_as(:'owner');
delete from public.trip_collaborators where trip_id = :trip and user_id = :'alice';
select pg_temp.act_as_owner();
select is_empty(format($$select id from public.trip_collaborators where trip_id = %s and user_id = %L$$, :trip, :'alice'),
  'the owner removes a collaborator');
select pg_temp.act_as_service_role();
delete from public.trip_collaborators where trip_id = :trip and user_id = :'carol';
select pg_temp.act_as_owner();
select is_empty(format($$select id from public.trip_collaborators where trip_id = %s and user_id = %L$$, :trip, :'carol'),
  'service_role removes any collaborator');

select pg_temp.act_as(:'viewer');
delete from public.trip_collaborators where trip_id = :trip and user_id = :'viewer';
select pg_temp.act_as_owner();
select is_empty(format($$select id from public.trip_collaborators where trip_id = %s and user_id = %L$$, :trip, :'viewer'),
  'a view collaborator may leave the trip');
select pg_temp.act_as(:'viewer');
select is_empty(format('select id from public.trips where id = %s', :trip), 'and then no longer sees it');
select pg_temp.act_as(:'editor');
delete from public.trip_collaborators where user_id = :'editor';
select pg_temp.act_as_owner();
select results_eq(:'collaborator_count' || :trip, array[1::bigint], 'an edit collaborator may leave the trip too');
select pg_temp.act_as(:'admin');
select results_eq(:'list_collaborators' || :trip, array['{"' || :'admin' || ' admin"}'],
  'and the remaining admin sees only themselves on the list');

-- Only the permission level changes: who the collaborator is and who added them stay as the
-- INSERT policy checked them.
select pg_temp.act_as_owner();
insert into public.trip_collaborators (trip_id, user_id, added_by, permission_level)
values (:trip, :'carol', :'owner', 'view');
select pg_temp.act_as(:'admin');
select throws_ok(format('update public.trip_collaborators set added_by = %L where trip_id = %s and user_id = %L',
    :'stranger', :trip, :'carol'), '42501', null,
  'an admin collaborator cannot rewrite added_by to someone else');
select throws_ok(format('update public.trip_collaborators set user_id = %L where trip_id = %s and user_id = %L',
    :'owner', :trip, :'carol'), '42501', null,
  'an admin collaborator cannot make the trip owner a collaborator through an update');
select pg_temp.act_as_owner();
select results_eq(format('select added_by::text || user_id::text from public.trip_collaborators where trip_id = %s and user_id = %L', :trip, :'carol'),
  array[:'owner' || :'carol'], 'the collaborator row is unchanged');

select * from finish();
rollback;
