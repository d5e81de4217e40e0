"""The app's panes, one small module each; they draw what the app hands them and keep no
run state of their own."""
