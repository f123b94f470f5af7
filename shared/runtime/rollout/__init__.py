"""Running a candidate model version beside the live one: shadow, canary, and following decisions."""
