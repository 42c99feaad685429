-- A node that connects with a role of its own (any role that is not, and is not a member of,
-- the owner of these tables) publishes, and says it is alive, only under its own name: the
-- role's name is the node's name. Without it any node could publish as another and get past
-- the `accept` lists of the others, or lift another node's bans. Nodes sharing the owner's
-- role (a small fleet, one password) are not checked: they trust each other.
CREATE FUNCTION crmonban_node_is_its_role() RETURNS trigger
LANGUAGE plpgsql AS $$
DECLARE
    claimed text := to_jsonb(NEW) ->> TG_ARGV[0];
BEGIN
    IF claimed IS DISTINCT FROM session_user::text
       AND NOT pg_has_role(session_user,
                           (SELECT relowner FROM pg_class WHERE oid = TG_RELID), 'MEMBER')
    THEN
        RAISE EXCEPTION 'role % may write only as node %, not as %',
            session_user, session_user, claimed
            USING ERRCODE = 'insufficient_privilege';
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER fleet_changes_node_is_its_role
    BEFORE INSERT OR UPDATE ON fleet_changes
    FOR EACH ROW EXECUTE FUNCTION crmonban_node_is_its_role('node');

CREATE TRIGGER fleet_nodes_name_is_its_role
    BEFORE INSERT OR UPDATE ON fleet_nodes
    FOR EACH ROW EXECUTE FUNCTION crmonban_node_is_its_role('name');
