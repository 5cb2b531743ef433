-- Several model kinds (lstm, gbm, linear) train side by side; each model row says which it is.
ALTER TABLE models ADD COLUMN kind text NOT NULL DEFAULT 'lstm';
