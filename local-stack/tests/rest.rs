//! `/rest/v1` through the `postgrest` crate (the client the functions use), against the TripSage
//! database: filters, select, order, paging, counts, single objects, inserts, upserts, updates,
//! deletes, `rpc`, profiles, PostgREST's error bodies, and RLS seen through user JWTs.
//!
//! `./scripts/test` starts a throwaway database and sets TRIPSAGE_TEST_DB_URL; by hand:
//! `scripts/db start && TRIPSAGE_TEST_DB_URL=$(scripts/db url) cargo test -p local-stack --test rest`.

use std::collections::BTreeMap;

use local_stack::keys;
use local_stack::testing::TestStack;
use postgrest::Postgrest;
use serde_json::{json, Value};

/// The API on a free loopback port, with a superuser connection for fixtures.
struct Stack {
    /// `http://127.0.0.1:PORT/rest/v1`
    base: String,
    test: TestStack,
}

impl std::ops::Deref for Stack {
    type Target = TestStack;

    fn deref(&self) -> &TestStack {
        &self.test
    }
}

impl Stack {
    async fn start() -> Self {
        let test = TestStack::start().await;
        Self {
            base: format!("{}/rest/v1", test.rest_url),
            test,
        }
    }

    /// A client sending the anon key as `apikey` and `token` as the bearer, as supabase-js does.
    fn client(&self, token: &str) -> Postgrest {
        Postgrest::new(&self.base)
            .insert_header("apikey", keys::role_key("anon"))
            .insert_header("Authorization", format!("Bearer {token}"))
    }

    fn anon(&self) -> Postgrest {
        self.client(&keys::role_key("anon"))
    }

    fn service(&self) -> Postgrest {
        self.client(&keys::role_key("service_role"))
    }

    /// A new user in `auth.users` and a client holding their access token.
    async fn user(&self) -> User {
        let row = self
            .db
            .query_one(
                "insert into auth.users (id, email, role, aud) \
                 values (gen_random_uuid(), gen_random_uuid() || '@example.com', 'authenticated', 'authenticated') \
                 returning id::text, email",
                &[],
            )
            .await
            .expect("create a user");
        let (id, email): (String, String) = (row.get(0), row.get(1));
        let token = keys::user_key(&id, &email, now());
        User {
            client: self.client(&token),
            id,
        }
    }
}

struct User {
    id: String,
    client: Postgrest,
}

fn now() -> i64 {
    let since = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    i64::try_from(since.unwrap().as_secs()).unwrap()
}

/// Status, headers and JSON body (`Value::Null` when empty).
struct Answer {
    status: u16,
    headers: BTreeMap<String, String>,
    body: Value,
}

async fn send(builder: postgrest::Builder) -> Answer {
    send_request(builder.build()).await
}

async fn send_request(request: reqwest::RequestBuilder) -> Answer {
    let response = request.send().await.expect("the API answers");
    let status = response.status().as_u16();
    let headers = response
        .headers()
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or_default().to_owned()))
        .collect();
    let text = response.text().await.expect("a body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|_| panic!("not JSON: {text}"))
    };
    Answer {
        status,
        headers,
        body,
    }
}

fn trip(user: &str, name: &str, destination: &str, budget: Option<f64>, notes: &[&str]) -> Value {
    json!({
        "user_id": user,
        "name": name,
        "destination": destination,
        "start_date": "2027-05-01",
        "end_date": "2027-05-08",
        "budget": budget,
        "notes": notes,
        "flexibility": {"dates": name.len().is_multiple_of(2)},
    })
}

/// Five trips of a new owner, inserted as one array through the API.
async fn owner_with_trips(stack: &Stack) -> (User, Vec<Value>) {
    let owner = stack.user().await;
    let rows = json!([
        trip(
            &owner.id,
            "Spring in Rome",
            "Rome, Italy",
            Some(1200.0),
            &["food", "art"]
        ),
        trip(
            &owner.id,
            "Kyoto temples",
            "Kyoto, Japan",
            Some(3000.0),
            &["temples"]
        ),
        trip(
            &owner.id,
            "Lisbon weekend",
            "Lisbon, Portugal",
            None,
            &["food"]
        ),
        trip(&owner.id, "Roma again", "ROME, Italy", Some(80.0), &[]),
        trip(
            &owner.id,
            "Hike Patagonia",
            "El Chaltén, Argentina",
            Some(2500.5),
            &["hiking", "food"]
        ),
    ]);
    let answer = send(owner.client.from("trips").insert(rows.to_string())).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let trips = answer.body.as_array().expect("representation").clone();
    assert_eq!(trips.len(), 5);
    (owner, trips)
}

fn names(body: &Value) -> Vec<&str> {
    body.as_array()
        .unwrap_or_else(|| panic!("an array: {body}"))
        .iter()
        .map(|row| row["name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn horizontal_filters_match_postgrest() {
    let stack = Stack::start().await;
    let (owner, _) = owner_with_trips(&stack).await;
    let mine = || {
        owner
            .client
            .from("trips")
            .eq("user_id", &owner.id)
            .order("id")
    };
    let cases: Vec<(&str, postgrest::Builder, Vec<&str>)> = vec![
        (
            "eq",
            mine().eq("name", "Kyoto temples"),
            vec!["Kyoto temples"],
        ),
        (
            "gt",
            mine().gt("budget", "1200"),
            vec!["Kyoto temples", "Hike Patagonia"],
        ),
        (
            "gte",
            mine().gte("budget", "1200"),
            vec!["Spring in Rome", "Kyoto temples", "Hike Patagonia"],
        ),
        ("lt", mine().lt("budget", "1200"), vec!["Roma again"]),
        ("lte", mine().lte("budget", "80"), vec!["Roma again"]),
        (
            "neq",
            mine()
                .neq("destination", "Rome, Italy")
                .lt("budget", "3000"),
            vec!["Roma again", "Hike Patagonia"],
        ),
        (
            "like",
            mine().like("destination", "*Italy"),
            vec!["Spring in Rome", "Roma again"],
        ),
        (
            "like is case-sensitive",
            mine().like("destination", "Rome*"),
            vec!["Spring in Rome"],
        ),
        (
            "ilike",
            mine().ilike("destination", "rome*"),
            vec!["Spring in Rome", "Roma again"],
        ),
        (
            "is null",
            mine().is("budget", "null"),
            vec!["Lisbon weekend"],
        ),
        (
            "not is null",
            mine().not("is", "budget", "null").lt("budget", "1000"),
            vec!["Roma again"],
        ),
        (
            "in",
            mine().in_("name", ["Lisbon weekend", "Roma again", "Nowhere"]),
            vec!["Lisbon weekend", "Roma again"],
        ),
        (
            "cs on an array",
            mine().cs("notes", "{food}"),
            vec!["Spring in Rome", "Lisbon weekend", "Hike Patagonia"],
        ),
        (
            "cd on an array",
            mine().cd("notes", "{food,art,temples}"),
            vec![
                "Spring in Rome",
                "Kyoto temples",
                "Lisbon weekend",
                "Roma again",
            ],
        ),
        (
            "cs on jsonb",
            mine().cs("flexibility", r#"{"dates":false}"#),
            vec!["Kyoto temples"],
        ),
        (
            "not.eq",
            mine()
                .not("eq", "destination", "Kyoto, Japan")
                .gt("budget", "2000"),
            vec!["Hike Patagonia"],
        ),
        (
            "or",
            mine().or("budget.lt.100,destination.ilike.*japan*"),
            vec!["Kyoto temples", "Roma again"],
        ),
        (
            "or with and",
            mine().or("and(budget.gt.1000,notes.cs.{food}),name.eq.Lisbon weekend"),
            vec!["Spring in Rome", "Lisbon weekend", "Hike Patagonia"],
        ),
    ];
    for (case, builder, expected) in cases {
        let answer = send(builder).await;
        assert_eq!(answer.status, 200, "{case}: {}", answer.body);
        assert_eq!(names(&answer.body), expected, "{case}");
    }
}

#[tokio::test]
async fn select_order_paging_count_and_single() {
    let stack = Stack::start().await;
    let (owner, trips) = owner_with_trips(&stack).await;
    let mine = || owner.client.from("trips").eq("user_id", &owner.id);

    let answer = send(
        mine()
            .select("title:name, budget::text")
            .order("budget.desc.nullslast")
            .limit(2),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body,
        json!([{"title": "Kyoto temples", "budget": "3000.0"}, {"title": "Hike Patagonia", "budget": "2500.5"}])
    );

    let answer = send(mine().order("budget.asc.nullsfirst").range(1, 2)).await;
    assert_eq!(names(&answer.body), ["Roma again", "Spring in Rome"]);
    assert_eq!(answer.headers["content-range"], "1-2/*");

    let answer = send(mine().select("id").order("id").exact_count()).await;
    assert_eq!(answer.status, 206, "a partial range with a known total");
    assert_eq!(answer.headers["content-range"], "0-0/5");

    let id = trips[2]["id"].to_string();
    let answer = send(mine().eq("id", &id).single()).await;
    assert_eq!(answer.status, 200);
    assert_eq!(
        answer.body["name"], "Lisbon weekend",
        "one object, not an array"
    );
    assert!(answer.headers["content-type"].starts_with("application/vnd.pgrst.object+json"));

    for builder in [mine().single(), mine().eq("id", "-1").single()] {
        let answer = send(builder).await;
        assert_eq!(answer.status, 406);
        assert_eq!(answer.body["code"], "PGRST116");
    }
}

#[tokio::test]
async fn inserts_updates_deletes_and_prefer() {
    let stack = Stack::start().await;
    let owner = stack.user().await;

    let minimal = owner
        .client
        .from("trips")
        .insert(trip(&owner.id, "Quiet", "Oslo", None, &[]).to_string())
        .build()
        .header("Prefer", "return=minimal");
    let answer = send_request(minimal).await;
    assert_eq!((answer.status, answer.body.clone()), (201, Value::Null));

    let answer = send(
        owner
            .client
            .from("trips")
            .insert(trip(&owner.id, "Loud", "Rio", Some(10.0), &[]).to_string()),
    )
    .await;
    assert_eq!(answer.status, 201);
    let id = answer.body[0]["id"].to_string();
    assert_eq!(
        answer.body[0]["travelers"], 1,
        "defaults fill missing columns"
    );

    let answer = send(
        owner
            .client
            .from("trips")
            .eq("id", &id)
            .update(r#"{"budget": 99.5, "notes": ["carnival"]}"#),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(answer.body[0]["budget"], 99.5);
    assert_eq!(answer.body[0]["notes"], json!(["carnival"]));

    let answer = send(
        owner
            .client
            .from("trips")
            .eq("name", "Quiet")
            .eq("user_id", &owner.id)
            .delete(),
    )
    .await;
    assert_eq!(answer.status, 200);
    assert_eq!(names(&answer.body), ["Quiet"]);
    let left = send(owner.client.from("trips").eq("user_id", &owner.id)).await;
    assert_eq!(names(&left.body), ["Loud"]);

    // Upsert on the (trip_id, user_id) unique key.
    let friend = stack.user().await;
    let collaborator = |level: &str| {
        json!({"trip_id": id.parse::<i64>().unwrap(), "user_id": friend.id, "permission_level": level, "added_by": owner.id}).to_string()
    };
    let answer = send(
        owner
            .client
            .from("trip_collaborators")
            .insert(collaborator("view")),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let duplicate = send(
        owner
            .client
            .from("trip_collaborators")
            .insert(collaborator("edit")),
    )
    .await;
    assert_eq!(duplicate.status, 409);
    assert_eq!(duplicate.body["code"], "23505");
    assert_eq!(
        duplicate.body["message"],
        "duplicate key value violates unique constraint \"trip_collaborators_trip_user_key\""
    );

    // A merge sets every column of the body, as PostgREST's does, so a user who may only change
    // `permission_level` is refused; the service role may merge.
    let merge = |client: &Postgrest| {
        client
            .from("trip_collaborators")
            .upsert(collaborator("edit"))
            .on_conflict("trip_id,user_id")
    };
    let refused = send(merge(&owner.client)).await;
    assert_eq!(
        (refused.status, refused.body["code"].as_str()),
        (403, Some("42501"))
    );
    let answer = send(merge(&stack.service())).await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    assert_eq!(answer.body[0]["permission_level"], "edit");
    let ignore = owner
        .client
        .from("trip_collaborators")
        .insert(collaborator("admin"))
        .on_conflict("trip_id,user_id")
        .build()
        .header("Prefer", "resolution=ignore-duplicates");
    let answer = send_request(ignore).await;
    assert_eq!((answer.status, answer.body.clone()), (201, json!([])));
    let rows = send(owner.client.from("trip_collaborators").eq("trip_id", &id)).await;
    assert_eq!(rows.body.as_array().unwrap().len(), 1);
    assert_eq!(rows.body[0]["permission_level"], "edit");

    let missing_trip =
        json!({"trip_id": -1, "user_id": friend.id, "added_by": owner.id}).to_string();
    let answer = send(
        stack
            .service()
            .from("trip_collaborators")
            .insert(missing_trip),
    )
    .await;
    assert_eq!(
        (answer.status, answer.body["code"].as_str()),
        (409, Some("23503"))
    );

    let bad_value = send(owner.client.from("trips").eq("id", "not-a-number")).await;
    assert_eq!(
        (bad_value.status, bad_value.body["code"].as_str()),
        (400, Some("22P02"))
    );
}

#[tokio::test]
async fn rls_applies_to_each_users_jwt() {
    let stack = Stack::start().await;
    let (owner, trips) = owner_with_trips(&stack).await;
    let stranger = stack.user().await;
    let id = trips[0]["id"].to_string();

    let seen = send(stranger.client.from("trips").eq("user_id", &owner.id)).await;
    assert_eq!((seen.status, seen.body.clone()), (200, json!([])));
    let changed = send(
        stranger
            .client
            .from("trips")
            .eq("id", &id)
            .update(r#"{"name":"mine now"}"#),
    )
    .await;
    assert_eq!(
        (changed.status, changed.body.clone()),
        (200, json!([])),
        "no row is visible to update"
    );
    let forged = send(
        stranger
            .client
            .from("trips")
            .insert(trip(&owner.id, "Forged", "X", None, &[]).to_string()),
    )
    .await;
    assert_eq!(forged.status, 403);
    assert_eq!(forged.body["code"], "42501");
    assert!(forged.body["message"]
        .as_str()
        .unwrap()
        .contains("row-level security"));

    let anon = send(stack.anon().from("trips").eq("user_id", &owner.id)).await;
    assert_eq!(
        (anon.status, anon.body),
        (200, json!([])),
        "no policy lets anon see trips"
    );
    let anon_insert = send(
        stack
            .anon()
            .from("trips")
            .insert(trip(&owner.id, "Anon", "X", None, &[]).to_string()),
    )
    .await;
    assert_eq!(
        anon_insert.status, 401,
        "permission errors of anon are 401: {}",
        anon_insert.body
    );

    let add = json!({"trip_id": trips[0]["id"], "user_id": stranger.id, "permission_level": "view", "added_by": owner.id});
    assert_eq!(
        send(
            owner
                .client
                .from("trip_collaborators")
                .insert(add.to_string())
        )
        .await
        .status,
        201
    );
    let seen = send(stranger.client.from("trips").eq("user_id", &owner.id)).await;
    assert_eq!(
        names(&seen.body),
        ["Spring in Rome"],
        "a viewer sees the shared trip only"
    );
    let edit = send(
        stranger
            .client
            .from("trips")
            .eq("id", &id)
            .update(r#"{"name":"viewer edit"}"#),
    )
    .await;
    assert_eq!(edit.body, json!([]), "a viewer cannot edit");

    let everything = send(
        stack
            .service()
            .from("trips")
            .eq("user_id", &owner.id)
            .exact_count(),
    )
    .await;
    assert_eq!(
        everything.headers["content-range"], "0-0/5",
        "service_role bypasses RLS"
    );
}

#[tokio::test]
async fn rpc_calls_functions_with_named_arguments() {
    let stack = Stack::start().await;
    let (owner, trips) = owner_with_trips(&stack).await;
    let notifications = json!([
        {"user_id": owner.id, "type": "trip_invitation", "title": "a", "message": "a"},
        {"user_id": owner.id, "type": "trip_invitation", "title": "b", "message": "b"},
        {"user_id": owner.id, "type": "trip_invitation", "title": "c", "message": "c"},
    ]);
    let inserted = send(
        stack
            .service()
            .from("notifications")
            .insert(notifications.to_string()),
    )
    .await;
    assert_eq!(inserted.status, 201, "{}", inserted.body);
    let first = inserted.body[0]["id"].clone();

    let count = send(owner.client.rpc("get_unread_notification_count", "{}")).await;
    assert_eq!((count.status, count.body.clone()), (200, json!(3)));
    let marked = send(owner.client.rpc(
        "mark_notifications_read",
        json!({"p_notification_ids": [first]}).to_string(),
    ))
    .await;
    assert_eq!(
        (marked.status, marked.body.clone()),
        (200, json!(1)),
        "a JSON array becomes bigint[]"
    );
    let count = send(owner.client.rpc("get_unread_notification_count", "")).await;
    assert_eq!(count.body, json!(2));

    let sync = json!({"p_user_id": owner.id, "p_trip_id": trips[1]["id"]}).to_string();
    let answer = send(owner.client.rpc("sync_to_calendar", sync)).await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    assert!(answer.body.is_i64(), "the webhook log id: {}", answer.body);

    let stranger = stack.user().await;
    let sync = json!({"p_user_id": stranger.id, "p_trip_id": trips[1]["id"]}).to_string();
    let refused = send(stranger.client.rpc("sync_to_calendar", sync)).await;
    assert!(
        refused.status >= 400,
        "a stranger cannot sync another's trip: {}",
        refused.body
    );
    assert!(refused.body["message"].is_string());

    for (function, arguments) in [
        ("no_such_function", "{}"),
        ("get_unread_notification_count", r#"{"extra":1}"#),
    ] {
        let answer = send(owner.client.rpc(function, arguments)).await;
        assert_eq!(
            (answer.status, answer.body["code"].as_str()),
            (404, Some("PGRST202")),
            "{function}"
        );
    }
    let service_only = send(owner.client.rpc("get_webhook_stats", "{}")).await;
    assert_eq!(
        (service_only.status, service_only.body["code"].as_str()),
        (403, Some("42501"))
    );
}

#[tokio::test]
async fn profiles_and_request_errors() {
    let stack = Stack::start().await;
    let owner = stack.user().await;

    let answer = send_request(
        owner
            .client
            .from("trips")
            .eq("user_id", &owner.id)
            .build()
            .header("Accept-Profile", "public"),
    )
    .await;
    assert_eq!(answer.status, 200);
    let hidden = Postgrest::new(&stack.base)
        .schema("auth")
        .insert_header("apikey", keys::role_key("service_role"));
    for builder in [
        hidden.from("users").select("*"),
        hidden.from("users").insert("{}"),
    ] {
        let answer = send(builder).await;
        assert_eq!(answer.status, 406, "{}", answer.body);
        assert_eq!(answer.body["code"], "PGRST106");
        assert_eq!(
            answer.body["hint"],
            "Only the following schemas are exposed: public, graphql_public"
        );
    }

    let unknown = send(owner.client.from("no_such_table")).await;
    assert_eq!(
        (unknown.status, unknown.body["code"].as_str()),
        (404, Some("PGRST205"))
    );
    let bad_filter = send(
        owner
            .client
            .from("trips")
            .eq("name", "x")
            .select("id,trips(*)"),
    )
    .await;
    assert_eq!(
        (bad_filter.status, bad_filter.body["code"].as_str()),
        (400, Some("PGRST100"))
    );
    let bad_json = send(owner.client.from("trips").insert("{not json")).await;
    assert_eq!(
        (bad_json.status, bad_json.body["code"].as_str()),
        (400, Some("PGRST102"))
    );
    let unknown_column = send(owner.client.from("trips").eq("no_column", "1")).await;
    assert_eq!(
        (unknown_column.status, unknown_column.body["code"].as_str()),
        (400, Some("42703"))
    );

    let nobody = send(Postgrest::new(&stack.base).from("trips")).await;
    assert_eq!(nobody.status, 401);
    assert_eq!(nobody.body["message"], "No API key found in request");
    let forged = format!("{}x", keys::role_key("service_role"));
    let forged = send(
        Postgrest::new(&stack.base)
            .insert_header("apikey", forged)
            .from("trips"),
    )
    .await;
    assert_eq!(
        (forged.status, forged.body["code"].as_str()),
        (401, Some("PGRST301"))
    );
    let expired = keys::user_key(&owner.id, "x@example.com", now() - 7200);
    let expired = send(stack.client(&expired).from("trips")).await;
    assert_eq!(
        (expired.status, expired.body["code"].as_str()),
        (401, Some("PGRST303"))
    );
}

#[tokio::test]
async fn values_are_bound_never_spliced() {
    let stack = Stack::start().await;
    let owner = stack.user().await;
    let hostile = r#"x'); delete from public.trips; --"#;
    let answer = send(
        owner.client.from("trips").insert(
            trip(
                &owner.id,
                hostile,
                "\"quoted\" 'place'",
                None,
                &["a,b", "c\"d"],
            )
            .to_string(),
        ),
    )
    .await;
    assert_eq!(answer.status, 201, "{}", answer.body);
    let found = send(owner.client.from("trips").eq("name", hostile)).await;
    assert_eq!(names(&found.body), [hostile]);
    assert_eq!(found.body[0]["destination"], "\"quoted\" 'place'");
    assert_eq!(found.body[0]["notes"], json!(["a,b", "c\"d"]));
    let listed = send(
        owner
            .client
            .from("trips")
            .in_("name", [format!("\"{}\"", hostile.replace('"', "\\\""))]),
    )
    .await;
    assert_eq!(
        names(&listed.body),
        [hostile],
        "in.() with a quoted element"
    );
    let total: i64 = stack
        .db
        .query_one("select count(*) from public.trips", &[])
        .await
        .unwrap()
        .get(0);
    assert!(total >= 1, "the table is intact");
}

#[tokio::test]
async fn browsers_may_call_it_cross_origin() {
    let stack = Stack::start().await;
    let client = reqwest::Client::new();
    let preflight = client
        .request(reqwest::Method::OPTIONS, format!("{}/trips", stack.base))
        .header("origin", "http://127.0.0.1:9")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "apikey, authorization, prefer",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(preflight.status(), 200);
    let headers = preflight.headers();
    assert_eq!(headers["access-control-allow-origin"], "*");
    assert_eq!(
        headers["access-control-allow-headers"],
        "apikey, authorization, prefer"
    );
    assert!(headers["access-control-allow-methods"]
        .to_str()
        .unwrap()
        .contains("PATCH"));
    let answer = send_request(
        stack
            .anon()
            .from("trips")
            .build()
            .header("origin", "http://127.0.0.1:9"),
    )
    .await;
    assert_eq!(answer.headers["access-control-allow-origin"], "*");
    assert!(answer.headers["access-control-expose-headers"].contains("Content-Range"));
}
