-- FriendCore on PostgreSQL, version 4: the one SQLite aggregate the shared statements use
-- (src/sql.rs: one statement text for both stores). json_group_array(x ORDER BY …) gives the JSON
-- array of x as text, '[]' for no rows — as SQLite's does.
CREATE FUNCTION friend_json_text_array(items TEXT[]) RETURNS TEXT
    LANGUAGE sql IMMUTABLE STRICT PARALLEL SAFE
    AS $$ SELECT array_to_json(items)::text $$;

CREATE AGGREGATE json_group_array(TEXT) (
    SFUNC = array_append,
    STYPE = TEXT[],
    FINALFUNC = friend_json_text_array,
    INITCOND = '{}'
);
