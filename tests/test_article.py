from kd_rl.examples import article


def test_article_example_distils_the_teacher():
    result = article.run(teacher_epochs=15, distill_steps=600, verbose=False)
    assert result.teacher_params == 2110 and result.student_params == 1060
    assert result.teacher_accuracy > 0.9
    assert result.agreement_before < 0.5
    assert result.agreement_after > 0.85
    assert result.kl_after < 0.1 * result.kl_before
