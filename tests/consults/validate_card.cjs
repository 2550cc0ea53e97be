// Parses an Adaptive Card with Microsoft's adaptivecards library (the JS renderer's own parser) at
// schema version 1.5 and prints what it found: parse and validation events, and whether the card
// it read back serialises to exactly the input (nothing unknown dropped). Reads the card as JSON on
// stdin. Run by tests/consults/test_card.py with NODE_PATH set to the repository's node_modules.
const AC = require("adaptivecards/dist/adaptivecards.js");

let input = "";
process.stdin.on("data", (chunk) => (input += chunk));
process.stdin.on("end", () => {
  const json = JSON.parse(input);
  const context = new AC.SerializationContext(new AC.Version(1, 5));
  const card = new AC.AdaptiveCard();
  card.parse(json, context);
  const events = [];
  for (let i = 0; i < context.eventCount; i++) {
    const e = context.getEventAt(i);
    events.push({ phase: e.phase, event: e.event, message: e.message });
  }
  const validation = card.validateProperties();
  for (const e of validation.validationEvents) {
    events.push({ phase: e.phase, event: e.event, message: e.message });
  }
  const back = card.toJSON(new AC.SerializationContext(new AC.Version(1, 5)));
  process.stdout.write(JSON.stringify({ events, roundTrip: back }));
});
