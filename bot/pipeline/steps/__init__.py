"""The pipeline's steps: each looks at one message and may decide what the bot does, or review what was
decided. A step never imports the pipeline that runs it."""
