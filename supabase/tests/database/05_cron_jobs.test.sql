-- Every pg_cron job's command runs without error when executed directly, the way pg_cron runs
-- it: one query string, outside any transaction block (VACUUM needs that). So this file has no
-- BEGIN; it runs against the throwaway test database, and the jobs only tidy it.
\set ON_ERROR_STOP 1
create extension if not exists pgtap with schema extensions;

select plan((select count(*)::int + 1 from cron.job));

select cmp_ok((select count(*) from cron.job), '>=', 10::bigint, 'the jobs are scheduled');

-- For each job: its command, then a passing test naming it. psql stops at the first error, so a
-- failing command leaves the plan short and the file fails.
select command, format('select pass(%L)', format('cron job %s runs: %s', jobname, schedule))
from cron.job
order by jobname
\gexec

select * from finish();
