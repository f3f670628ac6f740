package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"strconv"
	"strings"

	"github.com/redrive-go/redrive/admin"
)

func init() {
	register("group", &command{name: "delete", usage: groupDeleteUsage, run: runGroupDelete})
}

const groupDeleteUsage = `Usage: redrive group delete <topic> <group> [--yes]

Deletes a consumer group of a topic: the group on the topic's stream, and its
private retry stream and delayed retries. Its pending and unread entries are
no longer kept for it (other groups still get them), so the next trim can
remove them. For a group that stopped reading for good (an old deployment, a
service switched off) and holds every entry after its position in Redis.
Nothing deletes a group by itself. Asks for confirmation unless --yes is
given. A subscriber of the group that still runs creates it again.

Flags:
  --yes   do not ask for confirmation

Examples:
  redrive group delete orders old-billing
  redrive group delete orders old-billing --yes --json
` + globalFlags

func runGroupDelete(ctx context.Context, a *app, fs *flag.FlagSet, args []string) error {
	yes := fs.Bool("yes", false, "")
	inv, err := a.start(ctx, fs, args, nil, "topic", "group")
	if err != nil {
		return err
	}
	defer inv.close()
	topic, group := inv.args[0], inv.args[1]
	if !*yes {
		info, err := inv.adm.TopicInfo(ctx, topic, admin.TopicInfoOptions{})
		if err != nil {
			return err
		}
		var found *admin.GroupInfo
		for i := range info.Groups {
			if info.Groups[i].Name == group {
				found = &info.Groups[i]
			}
		}
		if found == nil {
			return fmt.Errorf("consumer group %q of topic %q not found", group, topic)
		}
		lag := "an unknown number of"
		if found.Lag >= 0 {
			lag = strconv.FormatInt(found.Lag, 10)
		}
		fmt.Fprintf(a.stderr, "Delete consumer group %q of topic %q? It has %s, %s unread entries and %s; this group will never process them.\nType the group name to confirm: ",
			group, topic, plural(found.Pending, "pending entry", "pending entries"), lag,
			plural(found.Retry.Length+found.Retry.Delayed.Count, "retry", "retries"))
		in := a.stdin
		if in == nil {
			in = strings.NewReader("")
		}
		answer, _ := bufio.NewReader(in).ReadString('\n')
		if strings.TrimSpace(answer) != group {
			fmt.Fprintln(a.stderr)
			return errors.New("not confirmed: nothing deleted (give --yes to skip the question)")
		}
	}
	res, err := inv.adm.DeleteGroup(ctx, topic, group)
	if err != nil {
		if errors.Is(err, admin.ErrNotFound) {
			return fmt.Errorf("consumer group %q of topic %q not found", group, topic)
		}
		return err
	}
	if a.json {
		return a.printJSON(res)
	}
	fmt.Fprintf(a.stdout, "Deleted consumer group %s of %s (it had %s and %s).\n",
		res.Group, res.Topic, plural(res.Pending, "pending entry", "pending entries"), plural(res.Retries, "retry", "retries"))
	return nil
}
